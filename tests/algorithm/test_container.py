"""The training container on an /opt/ml folder: every input format and its error cases, the entry point."""

import json
import os
import re
import subprocess
import sys
import time

import pytest

from helpers import BASE_HP, failure, make_rec_split, run_job, split_folders
from roost.algorithm.container import run_training
from roost.algorithm.layout import prepare_local_job
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
    val_m = _manifest(tmp / "val.jsonl", val, uri=True)  # file:// URIs
    status, job = run_job(
        tmp_path / "job", {"train": train_m, "validation": val_m}, _hp(30), attribute_names=["source-ref", "class"]
    )
    assert status == 0, failure(job)
    # a manifest elsewhere may not reach into the images' folder: roost train skips those lines, saying so
    status, job = run_job(
        tmp_path / "job2",
        {"train": train_m, "validation": _manifest(tmp_path / "val.jsonl", val, uri=True)},
        _hp(30),
        attribute_names=["source-ref", "class"],
    )
    assert status == 1 and "val.jsonl: the manifest has no lines inside its folder" in failure(job)
    cfg = json.loads((job / "input" / "config" / "inputdataconfig.json").read_text())
    assert (
        cfg["train"]["S3DataType"] == "AugmentedManifestFile"
        and cfg["train"]["ContentType"] == "application/x-recordio"
    )


def test_manifest_errors(folders, tmp_path):
    tmp, train, val = folders
    m = _manifest(tmp / "t.manifest", train, fmt=lambda k: k + 5)
    status, job = run_job(
        tmp_path / "job",
        {"train": m, "validation": _manifest(tmp / "v.jsonl", val)},
        _hp(30),
        attribute_names=["source-ref", "class"],
    )
    assert status == 1 and "label 5 is outside 0..2" in failure(job)
    status, job = run_job(
        tmp_path / "job",
        {"train": _manifest(tmp / "t.manifest", train), "validation": _manifest(tmp / "v.jsonl", val)},
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


def _job_hp(n: int, **overrides) -> dict:
    """One-epoch hyperparameters for the tiny test data set, as strings."""
    return {k: str(v) for k, v in {**BASE_HP, "num_training_samples": n, "epochs": 1, **overrides}.items()}


LINE = r"^\[\d\d/\d\d/\d{4} \d\d:\d\d:\d\d (INFO|WARNING|ERROR) \d+\] "


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_rec_split(tmp_path_factory.mktemp("data"))


def test_container_writes_client_error_failure(tmp_path, data):
    train, val, n = data
    job = tmp_path / "job"
    prepare_local_job(job, {"train": train, "validation": val}, _job_hp(n, num_classes="2", mini_batch_size="4"))
    assert run_training(job, workers=0) == 1
    failure = (job / "output" / "failure").read_text()
    assert failure.startswith("ClientError: ") and "is outside 0..1 (num_classes=2)" in failure


def test_container_missing_channel_and_wrong_content_type(tmp_path, data):
    train, val, n = data
    job = tmp_path / "job"
    hp = _job_hp(n, mini_batch_size="4")
    prepare_local_job(job, {"train": train}, hp)
    assert run_training(job, workers=0) == 1
    assert "'validation' channel" in (job / "output" / "failure").read_text()
    prepare_local_job(job, {"train": train, "validation": val}, hp)
    cfg = job / "input" / "config" / "inputdataconfig.json"
    cfg.write_text(json.dumps({"train": {"ContentType": "application/x-image"}}))
    assert run_training(job, workers=0) == 1
    assert "no images in class sub-folders" in (job / "output" / "failure").read_text()
    cfg.write_text(json.dumps({"train": {"ContentType": "text/csv"}}))
    assert run_training(job, workers=0) == 1
    assert "has ContentType 'text/csv'; use application/x-recordio" in (job / "output" / "failure").read_text()


@pytest.mark.slow
def test_container_entry_point_on_an_opt_ml_folder(tmp_path, data):
    train, val, n = data
    job = tmp_path / "opt_ml"
    prepare_local_job(job, {"train": train, "validation": val}, _job_hp(n))
    r = subprocess.run(
        [sys.executable, "-m", "roost", "container", "train", "--root", str(job)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.match(
        LINE + re.escape("Docker entrypoint called with argument(s): train") + "$", r.stdout.splitlines()[0]
    )
    assert "Searching for .rec files in" in r.stdout
    assert (job / "model" / "roost-model.json").is_file() and not (job / "output" / "failure").exists()
    # SageMaker packs /opt/ml/model itself; the container leaves no tarball
    assert not list(job.rglob("*.tar.gz"))


# --------------------------------------------------------------------------- hostile channels


def _lst_job(folders, tmp_path, line):
    tmp, train, val = folders
    lst = tmp_path / "train.lst"
    lst.write_bytes((tmp / "train.lst").read_bytes() + line)
    channels = {"train": train, "train_lst": lst, "validation": val, "validation_lst": tmp / "val.lst"}
    return channels


@pytest.mark.parametrize("path", ["../../../../etc/passwd", "/etc/passwd"])
def test_a_list_cannot_lead_a_job_out_of_its_channel(folders, tmp_path, path, caplog):
    channels = _lst_job(folders, tmp_path, f"99\t1.000000\t{path}\n".encode())
    status, job = run_job(tmp_path / "job", channels, _hp(30), confine=True)
    assert status == 1
    reason = failure(job)
    assert "train.lst: line 31: " in reason and f"{path} is outside the image channel" in reason
    # roost train on the user's own files: the entry is skipped, with a warning that names it
    status, job = run_job(tmp_path / "own", channels, _hp(30))
    assert status == 0, failure(job)
    assert "train.lst: skipped 1 entry outside the image channel" in caplog.text and path in caplog.text


def test_a_manifest_cannot_name_files_outside_its_channel(folders, tmp_path):
    _, train, val = folders
    manifest = tmp_path / "m" / "train.manifest"
    manifest.parent.mkdir()
    manifest.write_text(json.dumps({"source-ref": "file:///etc/passwd", "class": 0}) + "\n")
    status, job = run_job(tmp_path / "job", {"train": manifest, "validation": val}, _hp(30), confine=True)
    assert status == 1 and "train.manifest: line 1: /etc/passwd is outside the channel" in failure(job)


@pytest.mark.parametrize("ref", ["file:///etc/passwd", "../../../../../../../etc/passwd"])
def test_roost_train_skips_manifest_lines_that_leave_the_manifests_folder(folders, tmp_path, ref, caplog):
    tmp, train, val = folders
    manifest = _manifest(tmp / "escaping.manifest", train)
    manifest.write_text(manifest.read_text() + json.dumps({"source-ref": ref, "class": 0}) + "\n")
    status, job = run_job(
        tmp_path / "job",
        {"train": manifest, "validation": _manifest(tmp / "v.jsonl", val)},
        _hp(30),
        attribute_names=["source-ref", "class"],
    )
    assert status == 0, failure(job)
    assert "escaping.manifest: skipped 1 entry outside the manifest's folder" in caplog.text
    assert "/etc/passwd" in caplog.text and "cannot be decoded" not in caplog.text


def test_a_non_utf8_list_names_its_file_and_line(folders, tmp_path):
    channels = _lst_job(folders, tmp_path, b"99\t1.000000\tclass_1/\xff.png\n")
    status, job = run_job(tmp_path / "job", channels, _hp(30))
    assert status == 1 and "train_lst/train.lst: line 31: not UTF-8 text (byte 0xff at column 21)" in failure(job)


def test_a_damaged_record_in_a_loader_worker_is_a_clean_client_error(tmp_path):
    train, val, n = make_rec_split(tmp_path / "d")
    data = bytearray(train.read_bytes())
    offsets = list(__import__("roost.formats.recordio", fromlist=["x"]).read_index(train.with_suffix(".idx")).values())
    data[offsets[3] + 8 + 24 : offsets[3] + 8 + 40] = b"\0" * 16  # the PNG signature of the fourth image
    train.write_bytes(bytes(data))
    job = tmp_path / "job"
    prepare_local_job(job, {"train": train, "validation": val}, {k: str(v) for k, v in _hp(n).items()})
    assert run_training(job, workers=1) == 1  # decoded in a worker process
    reason = failure(job)
    assert reason.startswith(f"ClientError: {job}/input/data/train/train.rec record at byte {offsets[3]}: ")
    assert "Traceback" not in reason and "cannot be decoded" in reason


def test_an_idx_with_repeated_keys_keeps_every_record(tmp_path, caplog):
    train, val, n = make_rec_split(tmp_path / "d")
    lines = train.with_suffix(".idx").read_text().splitlines()
    lines[1] = lines[0].split("\t")[0] + "\t" + lines[1].split("\t")[1]  # the second record under the first's key
    train.with_suffix(".idx").write_text("\n".join(lines) + "\n")
    status, job = run_job(tmp_path / "job", {"train": train, "validation": val}, _hp(n, epochs=1))
    assert status == 0, failure(job)
    assert "key(s) name more than one record" in caplog.text and "reading every record" in caplog.text
    assert f"num_training_samples={n} but the train channel holds" not in caplog.text


def test_a_broken_idx_is_a_client_error(tmp_path):
    train, val, n = make_rec_split(tmp_path / "d")
    train.with_suffix(".idx").write_text("0\t0\nnot a line\n")
    status, job = run_job(tmp_path / "job", {"train": train, "validation": val}, _hp(n))
    assert status == 1 and "train.idx: line 2: expected '<key><TAB><byte offset>'" in failure(job)


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                with open(f"/proc/{stat}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(stat))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_no_process_outlives_a_killed_job(tmp_path):
    """The fork server, its loader workers and the resource tracker all end when the job is SIGKILLed."""
    train, val, n = make_rec_split(tmp_path / "d")
    job = tmp_path / "opt_ml"
    prepare_local_job(job, {"train": train, "validation": val}, {k: str(v) for k, v in _hp(n, epochs=500).items()})
    proc = subprocess.Popen(
        [sys.executable, "-m", "roost", "container", "train", "--root", str(job)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in proc.stdout:
        if "Epoch[1] Train-accuracy" in line:  # loader workers are up (they persist across epochs)
            break
    family = _descendants(proc.pid)
    assert len(family) >= 3  # fork server, resource tracker, workers
    proc.kill()
    proc.wait()
    deadline = time.time() + 15
    while [p for p in family if _alive(p)]:
        assert time.time() < deadline, f"still running after the job was killed: {[p for p in family if _alive(p)]}"
        time.sleep(0.1)


def test_the_seed_comes_from_the_environment(monkeypatch):
    from roost.algorithm.container import SEED_ENV, job_seed
    from roost.errors import UserError

    monkeypatch.delenv(SEED_ENV, raising=False)
    assert job_seed() == 0
    monkeypatch.setenv(SEED_ENV, " 42 ")
    assert job_seed() == 42
    for bad in ("x", "-1", str(2**32)):
        monkeypatch.setenv(SEED_ENV, bad)
        with pytest.raises(UserError, match="ROOST_SEED"):
            job_seed()


def test_the_host_processes_log_lines_and_progress_reach_the_first_process_handlers():
    """What ``_train_processes`` relays from its processes: log records to this process's handlers (``roost
    train``'s log file), progress to its hook (the progress bar)."""
    import logging
    import queue

    from roost.algorithm.container import _relay

    events: queue.Queue = queue.Queue()
    record = logging.getLogger("roost.algorithm").makeRecord(
        "roost.algorithm", logging.INFO, __file__, 1, "Epoch[%d] Validation-accuracy=%f", (0, 0.5), None
    )
    events.put(record)
    events.put(("train", 0, 3, 10))
    events.put(None)
    seen, progress = [], []

    class Keep(logging.Handler):
        def emit(self, r):
            seen.append(r.getMessage())

    handler = Keep()
    logging.getLogger("roost").addHandler(handler)
    try:
        _relay(events, lambda *a: progress.append(a))
    finally:
        logging.getLogger("roost").removeHandler(handler)
    assert seen == ["Epoch[0] Validation-accuracy=0.500000"] and progress == [("train", 0, 3, 10)]
