"""The data-set report: classes, sizes, warnings, samples, for folders, lists and records."""

import json
import shutil

import cv2
import numpy as np
import pytest

from roost.data import explore as ex
from roost.data import im2rec as core
from roost.formats import classes


@pytest.fixture()
def birds(mxnet_fixtures, tmp_path):
    shutil.copytree(mxnet_fixtures / "im2rec" / "images", tmp_path / "images")
    return tmp_path / "images"


def test_folder_report(birds):
    report, picks = ex.explore(birds, image_shape=(3, 224, 224), min_per_class=9)
    assert report.kind == "folder" and report.images == 24
    assert [(c.id, c.name, c.images, c.unreadable) for c in report.classes] == [
        (0, "american_goldfinch", 8, 0),
        (1, "blue_jay", 8, 0),
        (2, "northern_cardinal", 8, 1),
    ]
    assert report.sizes["width"] == {"min": 120, "median": 280.0, "max": 400}
    assert report.sizes["height"]["min"] == 90 and sum(report.sizes["histogram"]["counts"]) == 23
    assert [p for p, _ in report.unreadable] == [str(birds / "northern_cardinal" / "ncard_08_corrupt.jpg")]
    assert report.smaller_than_shape == 11
    text = "\n".join(report.warnings)
    assert "fewer than 9 images" in text and "ncard_08_corrupt.jpg" in text and "smaller than 224x224" in text
    assert sorted(picks) == [0, 1, 2]


def test_lst_and_rec_reports_agree(birds, tmp_path):
    core.make_lists(tmp_path / "all", birds, recursive=True)
    rep_lst, _ = ex.explore(tmp_path / "all.lst", root=birds, num_workers=2)
    # class names recovered from the folders in the list's paths
    assert [c.name for c in rep_lst.classes] == ["american_goldfinch", "blue_jay", "northern_cardinal"]
    core.pack_list(tmp_path / "all.lst", birds, on_skip=lambda *a: None)
    rep_rec, _ = ex.explore(tmp_path / "all.rec")
    assert [c.name for c in rep_rec.classes] == ["american_goldfinch", "blue_jay", "northern_cardinal"]
    classes.write(tmp_path / classes.FILE, ["goldfinch", "jay", "cardinal"])
    rep_rec, picks = ex.explore(tmp_path / "all.rec")
    assert rep_rec.kind == "rec" and rep_rec.images == 23 and not rep_rec.unreadable
    assert [(c.name, c.images) for c in rep_rec.classes] == [("goldfinch", 8), ("jay", 8), ("cardinal", 7)]
    assert rep_rec.sizes == rep_lst.sizes  # same images (the corrupt one is unreadable in both)


def test_imbalance_few_and_missing_ids(tmp_path):
    lst = tmp_path / "x.lst"
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), np.zeros((10, 12, 3), np.uint8))
    lst.write_text("".join(f"{i}\t{0 if i < 12 else 2}\ta.png\n" for i in range(14)))
    report, _ = ex.explore(lst, min_per_class=5)
    text = "\n".join(report.warnings)
    assert "class id(s) with no images: 1" in text
    assert "imbalanced" in text and "6.0x" in text
    assert "fewer than 5 images: class 2 (2)" in text


def test_multilabel_rec_counts_positives(mxnet_fixtures):
    report, _ = ex.explore(mxnet_fixtures / "im2rec" / "rec" / "pack_label" / "multi.rec")
    assert report.multi_label and len(report.classes) == 3 and report.images == 23


def test_corrupt_rec_is_reported_not_fatal(mxnet_fixtures, tmp_path):
    data = bytearray((mxnet_fixtures / "im2rec" / "rec" / "default" / "all.rec").read_bytes())
    data[100000:100004] = b"\0\0\0\0"  # damage inside one image
    bad = tmp_path / "bad.rec"
    bad.write_bytes(bytes(data[:-5000]))  # and truncate the last record
    report, _ = ex.explore(bad)
    assert report.images >= 21 and report.unreadable
    assert any("truncated" in reason or "decoded" in reason for _, reason in report.unreadable)


def test_pictures_and_json(birds, tmp_path):
    report, picks = ex.explore(birds)
    grid = ex.save_sample_grid(report, picks, tmp_path / "g" / "grid.png", per_class=4)
    img = cv2.imread(str(grid))
    assert img is not None and img.shape[0] > 200 and img.std() > 10
    plot = ex.save_size_plot(report, tmp_path / "sizes.png")
    assert cv2.imread(str(plot)) is not None
    d = json.loads(report.to_json())
    assert d["classes"][2]["name"] == "northern_cardinal" and d["unreadable"][0]["image"].endswith("corrupt.jpg")


def test_entries_outside_the_root_are_skipped_and_reported_or_refused(birds, tmp_path):
    import os

    from roost.formats.lst import ListEntry, write_list
    from roost.paths import OutsideRoot

    secret = tmp_path / "outside" / "secret.jpg"
    secret.parent.mkdir()
    shutil.copy(next(birds.glob("blue_jay/*.jpg")), secret)
    inside = next(birds.glob("american_goldfinch/*.jpg")).relative_to(birds).as_posix()
    lst = birds / "esc.lst"
    write_list(lst, [ListEntry(0, inside, (0.0,)), ListEntry(1, "../outside/secret.jpg", (1.0,))])
    write_list(lst.with_name("abs.lst"), [ListEntry(0, inside, (0.0,)), ListEntry(1, str(secret), (1.0,))])
    for name in ("esc.lst", "abs.lst"):
        report, _ = ex.explore(birds / name, root=birds)
        assert report.images == 1
        assert any("1 entry outside the image root" in w and "secret.jpg" in w for w in report.warnings)
        with pytest.raises(OutsideRoot, match=f"{name}: .*secret.jpg is outside the image root"):
            ex.explore(birds / name, root=birds, refuse_outside=True)
    os.symlink(secret, birds / "blue_jay" / "link.jpg")  # a link in a class folder that leads out
    report, _ = ex.explore(birds)
    assert report.images == 24 and any("outside the folder" in w and "link.jpg" in w for w in report.warnings)
    with pytest.raises(OutsideRoot, match="link.jpg leads outside the folder"):
        ex.explore(birds, refuse_outside=True)
