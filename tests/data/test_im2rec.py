"""roost im2rec against the files MXNet 1.9.1's im2rec.py wrote for the same images."""

import json
import os
import shutil

import cv2
import numpy as np
import pytest

from helpers import make_class_tree
from roost.data import im2rec as core
from roost.formats import recordio
from roost.formats.lst import ListEntry, read_list, write_list

OPTION_SETS = {
    "default": {},
    "single_thread_crash": {},
    "resize64": {"resize": 64},
    "resize64_center_crop": {"resize": 64, "center_crop": True},
    "png": {"encoding": ".png"},
    "pass_through": {"pass_through": True},
    "grey": {"color": 0},
    "quality80": {"quality": 80},
    "pack_label": {"pack_label": True},
}


@pytest.fixture(scope="module")
def im2rec_dir(mxnet_fixtures):
    return mxnet_fixtures / "im2rec"


LIST_COMMANDS = [
    ("birds", {"recursive": True, "train_ratio": 0.75, "test_ratio": 0.1}),
    ("all", {"recursive": True, "shuffle": False}),
    ("chunked", {"recursive": True, "chunks": 2}),
]


@pytest.mark.parametrize("prefix,kwargs", LIST_COMMANDS)
def test_list_mode_matches_mxnet(im2rec_dir, tmp_path, prefix, kwargs):
    listing, files = core.make_lists(tmp_path / prefix, im2rec_dir / "images", **kwargs)
    expected = sorted(p.name for p in (im2rec_dir / "lists").glob(prefix + "*.lst"))
    assert sorted(p.rsplit("/", 1)[-1] for p in files) == expected
    for name in expected:
        assert (tmp_path / name).read_bytes() == (im2rec_dir / "lists" / name).read_bytes(), name
    assert listing.folders == [("american_goldfinch", 0), ("blue_jay", 1), ("northern_cardinal", 2)]


def test_list_mode_non_recursive_and_exts(tmp_path):
    for name in ["b.JPG", "a.png", "c.gif", "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.jpg").write_bytes(b"x")
    listing = core.list_images(tmp_path)
    assert [(e.path, e.labels) for e in listing.entries] == [("a.png", (0.0,)), ("b.JPG", (0.0,))]
    listing = core.list_images(tmp_path, exts=[".gif"])
    assert [e.path for e in listing.entries] == ["c.gif"]


def _records(rec_path):
    idx = recordio.read_index(recordio.index_path_for(rec_path))
    out = []
    with recordio.RecordReader(rec_path) as r:
        for key, (offset, data) in zip(idx, r.iter_with_offsets(), strict=True):
            assert idx[key] == offset
            header, img = recordio.unpack(data)
            out.append((key, header, img))
    assert len(out) == len(idx)
    return out


def _pack_fixture_set(im2rec_dir, tmp_path, name, workers):
    src = im2rec_dir / "rec" / name
    lst = next(src.glob("*.lst"))
    shutil.copy(lst, tmp_path / lst.name)
    summary = core.pack_list(
        tmp_path / lst.name,
        im2rec_dir / "images",
        core.EncodeOptions(**OPTION_SETS[name]),
        num_workers=workers,
        on_skip=lambda *a: None,
    )
    return summary, src / (lst.stem + ".rec"), tmp_path / (lst.stem + ".rec")


@pytest.mark.parametrize("name", sorted(OPTION_SETS))
def test_rec_mode_matches_mxnet(im2rec_dir, tmp_path, name):
    summary, theirs, ours = _pack_fixture_set(
        im2rec_dir, tmp_path, name, workers=1 if name == "single_thread_crash" else 2
    )
    expected = json.loads((theirs.parent / "records.json").read_text())
    mine, mx = _records(ours), _records(theirs)
    assert [k for k, _, _ in mine] == [k for k, _, _ in mx] == [r["key"] for r in expected]
    if name == "pass_through":
        assert ours.read_bytes() == theirs.read_bytes()
        assert recordio.index_path_for(ours).read_bytes() == recordio.index_path_for(theirs).read_bytes()
        assert summary.skipped == []
        return
    # the corrupt JPEG is skipped and reported, never fatal
    assert [p for p, _ in summary.skipped] == ["northern_cardinal/ncard_08_corrupt.jpg"]
    assert summary.written == summary.total - 1 == len(expected)
    for (key, h1, img1), (_, h2, img2), rec in zip(mine, mx, expected, strict=True):
        assert (h1.flag, h1.id, h1.id2) == (h2.flag, h2.id, h2.id2) == (rec["flag"], rec["id"], rec["id2"])
        labels = h1.label.tolist() if h1.flag else h1.label
        assert labels == rec["label"]
        a = cv2.imdecode(np.frombuffer(img1, np.uint8), -1)
        b = cv2.imdecode(np.frombuffer(img2, np.uint8), -1)
        assert list(a.shape) == list(b.shape) == rec["decoded_shape"], key
        # JPEG bytes depend on the encoder build; decoded pixels must agree closely
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
        assert diff.mean() < 1.0 and abs(a.mean() - rec["decoded_mean"]) < 1.0, key


def test_worker_count_does_not_change_output(im2rec_dir, tmp_path):
    one = tmp_path / "one"
    two = tmp_path / "two"
    one.mkdir()
    two.mkdir()
    _, _, a = _pack_fixture_set(im2rec_dir, one, "resize64", workers=1)
    _, _, b = _pack_fixture_set(im2rec_dir, two, "resize64", workers=2)
    assert a.read_bytes() == b.read_bytes()


def test_interrupted_pack_keeps_previous_files(im2rec_dir, tmp_path):
    entries = read_list(im2rec_dir / "rec" / "default" / "all.lst")[:3]
    write_list(tmp_path / "x.lst", entries)
    core.pack_list(tmp_path / "x.lst", im2rec_dir / "images")
    before = (tmp_path / "x.rec").read_bytes()

    def interrupt(done, total):
        if done == 2:
            raise KeyboardInterrupt

    write_list(tmp_path / "x.lst", read_list(im2rec_dir / "rec" / "default" / "all.lst"))
    with pytest.raises(KeyboardInterrupt):
        core.pack_list(tmp_path / "x.lst", im2rec_dir / "images", on_progress=interrupt)
    assert (tmp_path / "x.rec").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.idx", "x.lst", "x.rec"]


def test_missing_file_and_bad_line_are_reported(im2rec_dir, tmp_path):
    lst = tmp_path / "m.lst"
    lst.write_text("0\t0.000000\tamerican_goldfinch/agold_01.jpg\n1\t0.000000\tnope/missing.jpg\nbroken\n")
    skipped = []
    s = core.pack_list(lst, im2rec_dir / "images", on_skip=lambda p, r: skipped.append((p, r)))
    assert s.written == 1 and skipped[0][0] == "nope/missing.jpg" and "file not found" in skipped[0][1]
    assert len(s.bad_lines) == 1 and "m.lst: line 3" in s.bad_lines[0]


def test_find_lists(tmp_path):
    for n in ["birds_train.lst", "birds_val.lst", "other.lst", "birds.txt"]:
        (tmp_path / n).write_text("")
    wd, found = core.find_lists(tmp_path / "birds")
    assert wd == str(tmp_path) and [f.rsplit("/", 1)[1] for f in found] == ["birds_train.lst", "birds_val.lst"]
    assert len(core.find_lists(tmp_path)[1]) == 3


def test_split_class_folders_is_stratified(tmp_path):
    root = make_class_tree(tmp_path / "img", {"bird": 10, "cat": 5, "dog": 3})
    (root / ".hidden").mkdir()
    cv2.imwrite(str(root / ".hidden" / "x.png"), np.zeros((4, 4, 3), np.uint8))
    (root / "cat" / "readme.txt").write_text("not an image")
    split = core.split_class_folders(root, val_ratio=0.2)
    assert split.classes == ["bird", "cat", "dog"]
    val_labels = sorted(e.label for e in split.val)
    assert val_labels == [0.0, 0.0, 1.0, 2.0]  # round(10*.2)=2, round(5*.2)=1, round(3*.2)=1
    assert len(split.train) + len(split.val) == 18 and not split.test
    assert sorted(e.index for e in split.train + split.val) == list(range(18))
    assert not {e.path for e in split.train} & {e.path for e in split.val}


def test_split_class_folders_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(core.DatasetLayoutError, match="no images found"):
        core.split_class_folders(tmp_path / "empty")
    root = make_class_tree(tmp_path / "one", {"bird": 3})
    with pytest.raises(core.DatasetLayoutError, match="only one class folder \\('bird'\\)"):
        core.split_class_folders(root)


def test_repeated_indices_are_refused_and_entries_leaving_their_root_are_skipped(tmp_path):
    root = make_class_tree(tmp_path / "img", {"bird": 2})
    write_list(tmp_path / "dup.lst", [ListEntry(0, "bird/000.png", (0.0,)), ListEntry(0, "bird/001.png", (0.0,))])
    with pytest.raises(core.DuplicateIndex, match="index 0 is given to both bird/000.png and bird/001.png"):
        core.pack_list(tmp_path / "dup.lst", root)
    outside = tmp_path / "outside.png"
    outside.write_bytes((root / "bird" / "000.png").read_bytes())
    write_list(tmp_path / "out.lst", [ListEntry(0, "bird/000.png", (0.0,)), ListEntry(1, "../outside.png", (0.0,))])
    os.symlink(outside, root / "bird" / "link.png")  # a link inside that leads out is the same case
    write_list(tmp_path / "link.lst", [ListEntry(0, "bird/000.png", (0.0,)), ListEntry(1, "bird/link.png", (0.0,))])
    for lst, name in (("out.lst", "../outside.png"), ("link.lst", "bird/link.png")):
        summary = core.pack_list(tmp_path / lst, root)
        assert summary.written == 1 and summary.total == 2
        assert summary.skipped == [
            (name, f"{name}: outside the image root {root} (give a root that holds every listed image)")
        ]
