"""Channels to samples: RecordIO files of a channel and the label rules."""

import shutil

import pytest

from helpers import make_rec_split, single_entry_rec
from roost.algorithm.hyperparameters import parse_hyperparameters
from roost.data.channels import ChannelError, find_rec_files


@pytest.fixture(scope="module")
def recs(tmp_path_factory):
    return make_rec_split(tmp_path_factory.mktemp("recs"), per_class=8)


def test_channel_folder_with_several_files(recs, tmp_path):
    train, val, _ = recs
    for f in (train, val):
        shutil.copy(f, tmp_path / f.name)
    assert [f.name for f in find_rec_files(tmp_path)] == ["train.rec", "val.rec"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ChannelError, match="no .rec files found"):
        find_rec_files(tmp_path / "empty")
    with pytest.raises(ChannelError, match="no such file"):
        find_rec_files(tmp_path / "missing.rec")


def test_label_outside_num_classes(tmp_path):
    from roost.algorithm.train import load_channel
    from roost.data.channels import ChannelError

    rec = single_entry_rec(tmp_path, 5.0)
    hp = parse_hyperparameters({"num_classes": "3", "num_training_samples": "1", "mini_batch_size": "1"})
    with pytest.raises(ChannelError, match="label 5 is outside 0..2"):
        load_channel([rec], hp, train=True)
