"""Every input format of the algorithm, end to end on small images made in the tests, with their error cases."""

import json
import os

import pytest

from helpers import BASE_HP, failure, make_rec_split, run_job, split_folders
from roost.data import im2rec
from roost.formats.artifact import read_members, read_meta


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("img")
    train, val = split_folders(tmp)
    for name, root in (("train", train), ("val", val)):
        im2rec.make_lists(tmp / name, root, recursive=True)
    return tmp, train, val


def _hp(n, **extra):
    return {**BASE_HP, "num_training_samples": n, **extra}


def test_image_mode_with_lst(folders, tmp_path):
    tmp, train, val = folders
    status, job = run_job(
        tmp_path / "job",
        {"train": train, "train_lst": tmp / "train.lst", "validation": val, "validation_lst": tmp / "val.lst"},
        _hp(30, resize=20),
    )
    assert status == 0, failure(job)
    log = (job / "output" / "data" / "metrics.csv").read_text()
    assert log.count("\n") == 3


def test_class_folders_need_no_lst(folders, tmp_path):
    _, train, val = folders
    (train / ".thumbnails").mkdir(exist_ok=True)
    (train / ".thumbnails" / "x.png").write_bytes(b"not really")
    (train / "class_0" / "notes.txt").write_text("ignored")
    status, job = run_job(tmp_path / "job", {"train": train, "validation": val}, _hp(30))
    assert status == 0, failure(job)
    meta = read_meta(read_members(job / "model"))
    assert meta.class_names == ["class_0", "class_1", "class_2"]


@pytest.mark.parametrize(
    "line,message",
    [
        ("99\t1.000000\textra\tclass_1/000.png\n", "expected 3 tab-separated fields"),
        ("99\t1.000000\tclass_1/missing.png\n", "listed but not found under the channel root"),
        ("99\t7.000000\tclass_1/000.png\n", "label 7 is outside 0..2"),
    ],
)
def test_lst_traps_are_clear_errors(folders, tmp_path, line, message):
    tmp, train, val = folders
    bad = tmp_path / "bad.lst"
    bad.write_text((tmp / "train.lst").read_text() + line)
    status, job = run_job(
        tmp_path / "job",
        {"train": train, "train_lst": bad, "validation": val, "validation_lst": tmp / "val.lst"},
        _hp(30),
    )
    assert status == 1
    assert failure(job).startswith("ClientError: ") and message in failure(job)


def test_train_and_validation_on_the_same_images(folders, tmp_path):
    tmp, train, _ = folders
    status, job = run_job(
        tmp_path / "job",
        {"train": train, "train_lst": tmp / "train.lst", "validation": train, "validation_lst": tmp / "train.lst"},
        _hp(30),
    )
    assert status == 1 and "are also training images" in failure(job)


def _manifest(path, root, label_key="class", fmt=lambda label: label, uri=False):
    lines = []
    for k, folder in enumerate(sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))):
        for img in sorted(folder.glob("*.png")):
            ref = img.resolve().as_uri() if uri else os.path.relpath(img, path.parent)
            lines.append(json.dumps({"source-ref": ref, label_key: fmt(k), f"{label_key}-metadata": {"x": 1}}))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_augmented_manifests(folders, tmp_path):
    tmp, train, val = folders
    train_m = _manifest(tmp / "train.manifest", train)  # relative paths
    val_m = _manifest(tmp_path / "val.jsonl", val, uri=True)  # file:// URIs
    status, job = run_job(
        tmp_path / "job", {"train": train_m, "validation": val_m}, _hp(30), attribute_names=["source-ref", "class"]
    )
    assert status == 0, failure(job)
    cfg = json.loads((job / "input" / "config" / "inputdataconfig.json").read_text())
    assert (
        cfg["train"]["S3DataType"] == "AugmentedManifestFile"
        and cfg["train"]["ContentType"] == "application/x-recordio"
    )


def test_manifest_errors(folders, tmp_path):
    tmp, train, val = folders
    m = _manifest(tmp_path / "t.manifest", train, fmt=lambda k: k + 5)
    status, job = run_job(
        tmp_path / "job",
        {"train": m, "validation": _manifest(tmp_path / "v.jsonl", val)},
        _hp(30),
        attribute_names=["source-ref", "class"],
    )
    assert status == 1 and "label 5 is outside 0..2" in failure(job)
    status, job = run_job(
        tmp_path / "job",
        {"train": _manifest(tmp_path / "t.manifest", train), "validation": _manifest(tmp_path / "v.jsonl", val)},
        _hp(30),
        attribute_names=["source-ref", "label"],
    )
    assert status == 1 and "no 'label' attribute" in failure(job)


def test_recordio_still_default_and_content_type_from_files(tmp_path):
    train, val, n = make_rec_split(tmp_path / "d")
    status, job = run_job(tmp_path / "job", {"train": train, "validation": val}, _hp(n))
    assert status == 0, failure(job)
    assert (
        json.loads((job / "input" / "config" / "inputdataconfig.json").read_text())["train"]["ContentType"]
        == "application/x-recordio"
    )


def test_class_names_from_the_lst_beside_the_rec(tmp_path):
    import shutil

    train, val, n = make_rec_split(tmp_path / "d")
    only = tmp_path / "no_classes_json"
    only.mkdir()
    for f in (train, train.with_suffix(".idx"), train.with_suffix(".lst"), val, val.with_suffix(".idx")):
        shutil.copy(f, only / f.name)
    status, job = run_job(tmp_path / "job", {"train": only / "train.rec", "validation": only / "val.rec"}, _hp(n))
    assert status == 0, failure(job)
    assert read_meta(read_members(job / "model")).class_names == ["class_0", "class_1", "class_2"]
