"""Samples to tensors: the dataset, the round-batch sampler and loader workers."""

import shutil

import pytest
import torch

from helpers import make_rec_split
from roost.data.augment import Preprocess
from roost.data.channels import recordio_samples
from roost.data.dataset import ImageDataset, RoundBatchSampler, make_loader


def RecordImageDataset(files, pre, channels, num_classes):  # noqa: N802 - a RecordIO channel's dataset
    return ImageDataset(recordio_samples(files, num_classes, False), files, pre, channels, num_classes)


@pytest.fixture(scope="module")
def recs(tmp_path_factory):
    return make_rec_split(tmp_path_factory.mktemp("recs"), per_class=8)


def test_round_batch_sampler_tops_up_the_last_batch():
    s = RoundBatchSampler(10, 4, seed=1)
    batches = list(s)
    assert len(batches) == len(s) == 3 and all(len(b) == 4 for b in batches)
    flat = [i for b in batches for i in b]
    assert set(flat) == set(range(10)) and flat[10:] == flat[:2]
    s.set_epoch(1)
    assert [i for b in s for i in b] != flat
    assert all(len(b) == 8 for b in RoundBatchSampler(3, 8))  # fewer images than a batch


def test_dataset_reads_with_and_without_idx(recs, tmp_path):
    train, _, n = recs
    pre = Preprocess(16, 16)
    with_idx = RecordImageDataset([train], pre, channels=3, num_classes=3)
    shutil.copy(train, tmp_path / "copy.rec")
    no_idx = RecordImageDataset([tmp_path / "copy.rec"], pre, channels=3, num_classes=3)
    assert len(with_idx) == len(no_idx) == n
    x, y = with_idx[0]
    assert x.dtype == torch.uint8 and x.shape == (3, 16, 16) and 0 <= y < 3
    assert torch.equal(no_idx[0][0], x)
    grey = RecordImageDataset([train], pre, channels=1, num_classes=3)
    assert grey[0][0].shape == (1, 16, 16)


def test_loader_batches_in_worker_processes(recs):
    train, _, n = recs
    ds = RecordImageDataset([train], Preprocess(16, 16, augmentation_type="crop"), channels=3, num_classes=3)
    loader = make_loader(ds, 4, train=True, workers=2)
    batches = list(loader)
    assert len(batches) == -(-n // 4) and all(b[0].shape == (4, 3, 16, 16) for b in batches)
    assert {int(y) for b in batches for y in b[1]} == set(ds.label_matrix().tolist()) == {0, 1, 2}
