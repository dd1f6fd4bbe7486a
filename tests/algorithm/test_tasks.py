"""Single- and multi-label classification: reports, and multi-label training from every input format."""

import json
import shutil

import numpy as np
import pytest

from helpers import BASE_HP, failure, make_multilabel, run_job
from roost.algorithm.tasks import per_class_report
from roost.data import im2rec
from roost.formats.artifact import read_members, read_meta
from roost.formats.lst import read_list


def _hp(n, **extra):
    return {**BASE_HP, "num_training_samples": n, **extra}


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multi")
    train_root, train_lst = make_multilabel(tmp / "train", n=40, seed=1)
    val_root, val_lst = make_multilabel(tmp / "val", n=12, seed=2)
    return train_root, train_lst, val_root, val_lst


def test_multilabel_from_lst_with_weighted_loss(multi, tmp_path, caplog):
    train_root, train_lst, val_root, val_lst = multi
    status, job = run_job(
        tmp_path / "job",
        {"train": train_root, "train_lst": train_lst, "validation": val_root, "validation_lst": val_lst},
        _hp(40, multi_label=1, use_weighted_loss=1, epochs=3),
    )
    assert status == 0, failure(job)
    last = json.loads((job / "output" / "data" / "metrics.jsonl").read_text().splitlines()[-1])
    assert 0 <= last["validation_accuracy"] <= 1 and last["validation_map"] is not None
    row = last["validation_per_class"][0]
    assert {"precision", "recall", "f1", "average_precision", "accuracy"} <= set(row)
    assert "use_weighted_loss: positive weights per class" in caplog.text
    assert read_meta(read_members(job / "model")).multi_label


def test_multilabel_recordio_and_label_count_mismatch(multi, tmp_path):
    train_root, train_lst, val_root, val_lst = multi
    for root, lst, stem in ((train_root, train_lst, "train"), (val_root, val_lst, "val")):
        shutil.copy(lst, tmp_path / f"{stem}.lst")
        im2rec.pack_list(tmp_path / f"{stem}.lst", root, im2rec.EncodeOptions(pack_label=True, encoding=".png"))
    status, job = run_job(
        tmp_path / "job", {"train": tmp_path / "train.rec", "validation": tmp_path / "val.rec"}, _hp(40, multi_label=1)
    )
    assert status == 0, failure(job)
    status, job = run_job(
        tmp_path / "job2",
        {"train": tmp_path / "train.rec", "validation": tmp_path / "val.rec"},
        _hp(40, multi_label=1, num_classes=4),
    )
    assert status == 1
    assert "Mismatch between number of labels in the multi-label data (3) and the num_classes parameter (4)" in failure(
        job
    )


def test_multilabel_class_id_manifest(multi, tmp_path):
    train_root, train_lst, val_root, val_lst = multi

    def manifest(path, root, lst):
        rows = [
            json.dumps({"source-ref": str(root / e.path), "labels": [i for i, v in enumerate(e.labels) if v]})
            for e in read_list(lst)
        ]
        path.write_text("\n".join(rows) + "\n")
        return path

    status, job = run_job(
        tmp_path / "job",
        {
            # beside its images: a manifest may name only images below its own folder
            "train": manifest(train_root / "t.manifest", train_root, train_lst),
            "validation": manifest(val_root / "v.manifest", val_root, val_lst),
        },
        _hp(40, multi_label=1),
        content_types={
            "train": "application/x-recordio; label-format=class-id",
            "validation": "application/x-recordio; label-format=class-id",
        },
        attribute_names=["source-ref", "labels"],
    )
    assert status == 0, failure(job)


def test_per_class_report():

    rep = per_class_report(np.array([[3, 1], [0, 2]]))
    assert rep[0] == {"class": 0, "precision": 1.0, "recall": 0.75, "f1": pytest.approx(6 / 7), "support": 4}
    assert rep[1]["precision"] == pytest.approx(2 / 3) and rep[1]["recall"] == 1.0
