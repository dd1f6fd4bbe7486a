"""MXNet's ``tools/im2rec.py``, reimplemented: image lists and RecordIO packing.

List mode and rec mode produce what MXNet 1.x produces for the same inputs
(same labels, same seed-100 shuffle, same file names and number formats, same
record ids and order). Where MXNet misbehaves Roost deliberately differs:

* an unreadable image is skipped with a warning naming it, and counted, on
  every code path (MXNet's single-process path crashes and leaves a partial
  file);
* ``.rec``/``.idx`` are written under temporary names and renamed at the end,
  so an interrupted run never leaves a short file behind;
* output order always equals list order, whatever the number of workers.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from roost.data.images import DEFAULT_EXTS, ImageDecodeError, encode, imread, is_image_name
from roost.data.parallel import process_pool
from roost.errors import UserError
from roost.formats import recordio
from roost.formats.lst import ListEntry, LstError, iter_list, write_list
from roost.paths import Confinement, walk_files

log = logging.getLogger(__name__)

SHUFFLE_SEED = 100  # im2rec.py: random.seed(100)


# --------------------------------------------------------------------------- list mode


@dataclass
class ImageListing:
    entries: list[ListEntry]
    #: (folder relative to root, label) in label order, as im2rec prints them
    folders: list[tuple[str, int]]


def list_images(
    root: str | os.PathLike, *, recursive: bool = False, exts: Sequence[str] = DEFAULT_EXTS
) -> ImageListing:
    """``im2rec.list_image``: every folder that holds an image becomes a label, in sorted walk order."""
    root = os.path.abspath(root)
    entries: list[ListEntry] = []
    if recursive:
        cat: dict[str, int] = {}
        walked: set[str] = set()
        for path, dirs, files in os.walk(root, followlinks=True):
            if os.path.realpath(path) in walked:  # a link back up the tree: MXNet would walk it forever
                dirs.clear()
                continue
            walked.add(os.path.realpath(path))
            dirs.sort()
            files.sort()
            for fname in files:
                fpath = os.path.join(path, fname)
                if is_image_name(fname, exts) and os.path.isfile(fpath):
                    if path not in cat:
                        cat[path] = len(cat)
                    entries.append(ListEntry(len(entries), os.path.relpath(fpath, root), (float(cat[path]),)))
        folders = [(os.path.relpath(k, root), v) for k, v in sorted(cat.items(), key=lambda kv: kv[1])]
    else:
        for fname in sorted(os.listdir(root)):
            fpath = os.path.join(root, fname)
            if is_image_name(fname, exts) and os.path.isfile(fpath):
                entries.append(ListEntry(len(entries), os.path.relpath(fpath, root), (0.0,)))
        folders = [(".", 0)] if entries else []
    return ImageListing(entries, folders)


def split_lists(
    entries: list[ListEntry],
    prefix: str,
    *,
    chunks: int = 1,
    train_ratio: float = 1.0,
    test_ratio: float = 0.0,
    shuffle: bool = True,
) -> dict[str, list[ListEntry]]:
    """``im2rec.make_list`` without the writing: ``{file name: entries}`` in the order MXNet writes them."""
    entries = list(entries)
    if shuffle:
        random.Random(SHUFFLE_SEED).shuffle(entries)
    n = len(entries)
    chunk_size = (n + chunks - 1) // chunks
    out: dict[str, list[ListEntry]] = {}
    for i in range(chunks):
        chunk = entries[i * chunk_size : (i + 1) * chunk_size]
        str_chunk = f"_{i}" if chunks > 1 else ""
        sep = int(chunk_size * train_ratio)
        sep_test = int(chunk_size * test_ratio)
        if train_ratio == 1.0:
            out[prefix + str_chunk + ".lst"] = chunk
        else:
            if test_ratio:
                out[prefix + str_chunk + "_test.lst"] = chunk[:sep_test]
            if train_ratio + test_ratio < 1.0:
                out[prefix + str_chunk + "_val.lst"] = chunk[sep_test + sep :]
            out[prefix + str_chunk + "_train.lst"] = chunk[sep_test : sep_test + sep]
    return out


def make_lists(
    prefix: str | os.PathLike,
    root: str | os.PathLike,
    *,
    recursive=False,
    exts=DEFAULT_EXTS,
    chunks=1,
    train_ratio=1.0,
    test_ratio=0.0,
    shuffle=True,
) -> tuple[ImageListing, dict[str, list[ListEntry]]]:
    listing = list_images(root, recursive=recursive, exts=exts)
    files = split_lists(
        listing.entries,
        os.path.abspath(prefix),
        chunks=chunks,
        train_ratio=train_ratio,
        test_ratio=test_ratio,
        shuffle=shuffle,
    )
    for name, entries in files.items():
        write_list(name, entries)
    return listing, files


# --------------------------------------------------------------------------- rec mode


@dataclass(frozen=True)
class EncodeOptions:
    pass_through: bool = False
    resize: int = 0
    center_crop: bool = False
    quality: int = 95
    color: int = 1
    encoding: str = ".jpg"
    pack_label: bool = False


def transform(img, resize: int = 0, center_crop: bool = False):
    """im2rec's centre square crop then shorter-side resize (integer division, bilinear)."""
    h, w = img.shape[:2]
    if center_crop:
        if h > w:
            margin = (h - w) // 2
            img = img[margin : margin + w, :]
        else:
            margin = (w - h) // 2
            img = img[:, margin : margin + h]
        h, w = img.shape[:2]
    if resize:
        newsize = (resize, h * resize // w) if h > w else (w * resize // h, resize)
        img = cv2.resize(img, newsize)
    return img


def encode_entry(root: str, entry: ListEntry, opts: EncodeOptions) -> bytes:
    """One record's bytes (IRHeader + image), or :class:`ImageDecodeError`."""
    if len(entry.labels) > 1 and opts.pack_label:
        header = recordio.IRHeader(0, np.asarray(entry.labels, dtype=np.float32), entry.index, 0)
    elif entry.labels:
        header = recordio.IRHeader(0, entry.labels[0], entry.index, 0)
    else:
        raise ImageDecodeError(f"list entry {entry.index} ({entry.path}) has no label")
    fullpath = os.path.join(root, entry.path)
    if opts.pass_through:
        try:
            with open(fullpath, "rb") as f:
                return recordio.pack(header, f.read())
        except OSError as err:
            raise ImageDecodeError(f"{fullpath}: {err.strerror or err}") from None
    img = transform(imread(fullpath, opts.color), opts.resize, opts.center_crop)
    return recordio.pack(header, encode(img, opts.encoding, opts.quality))


_worker_state: tuple[str, EncodeOptions] | None = None


def _init_worker(root: str, opts: EncodeOptions) -> None:
    global _worker_state
    _worker_state = (root, opts)
    # one process per core already; OpenCV's own threads would oversubscribe
    cv2.setNumThreads(1)


def _encode_job(entry: ListEntry) -> tuple[ListEntry, bytes | None, str | None]:
    assert _worker_state is not None
    root, opts = _worker_state
    try:
        return entry, encode_entry(root, entry, opts), None
    except ImageDecodeError as err:
        return entry, None, str(err)
    except Exception as err:  # noqa: BLE001 - one bad file must never kill the job
        return entry, None, f"{os.path.join(root, entry.path)}: {type(err).__name__}: {err}"


@dataclass
class PackSummary:
    lst: str
    rec: str
    idx: str
    total: int = 0
    written: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    bad_lines: list[str] = field(default_factory=list)
    bytes: int = 0
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.total / self.seconds if self.seconds else 0.0


class DuplicateIndex(UserError):
    """Two entries of a list share an index: the .idx could name only one of their records."""


def _check_list(lst_path: str, root: str, entries: list[ListEntry]) -> list[ListEntry]:
    """The entries to pack: repeated indices refused (MXNet packs them and one record becomes unreachable by key),
    entries that leave the image root left out (``roost.paths``' rule for the command-line tools; the caller
    reports them as skipped)."""
    seen: dict[int, str] = {}
    for e in entries:
        if e.index in seen:
            raise DuplicateIndex(
                f"{lst_path}: index {e.index} is given to both {seen[e.index]} and {e.path}; every image needs its own "
                "index (im2rec --list numbers them for you)"
            )
        seen[e.index] = e.path
    confinement = Confinement([root], refuse=False, where=f"the image root {root}", quiet=True)
    return confinement.keep(entries, lambda e: os.path.join(root, e.path), lst_path)


def pack_list(
    lst_path: str | os.PathLike,
    root: str | os.PathLike,
    opts: EncodeOptions = EncodeOptions(),
    *,
    out_stem: str | os.PathLike | None = None,
    num_workers: int = 1,
    on_progress: Callable[[int, int], None] | None = None,
    on_skip: Callable[[str, str], None] | None = None,
) -> PackSummary:
    """Pack the images of one ``.lst`` into ``<stem>.rec`` + ``<stem>.idx``.

    ``on_progress(done, total)`` is called as records are written; ``on_skip(path, reason)``
    for every image that could not be packed.
    """
    lst_path = os.fspath(lst_path)
    root = os.path.abspath(root)
    stem = os.fspath(out_stem) if out_stem is not None else os.path.splitext(lst_path)[0]
    summary = PackSummary(lst=lst_path, rec=stem + ".rec", idx=stem + ".idx")
    bad: list[LstError] = []
    entries = list(iter_list(lst_path, errors=bad))
    summary.bad_lines = [str(e) for e in bad]
    for e in bad:
        log.warning("ignored %s", e)
    summary.total = len(entries)
    inside = _check_list(lst_path, root, entries)
    start = time.perf_counter()

    def skip(entry: ListEntry, reason: str) -> None:
        summary.skipped.append((entry.path, reason))
        if on_skip:
            on_skip(entry.path, reason)
        else:
            log.warning("skipped %s", reason)

    kept = {id(e) for e in inside}
    for entry in entries:
        if id(entry) not in kept:
            skip(entry, f"{entry.path}: outside the image root {root} (give a root that holds every listed image)")
    entries = inside

    workers = max(1, min(num_workers, len(entries) or 1))
    pool = None
    if workers > 1:
        pool = process_pool(workers, initializer=_init_worker, initargs=(root, opts))
        # imap keeps list order; small chunks keep the progress bar live
        results: Iterable = pool.imap(
            _encode_job, entries, chunksize=max(1, min(16, len(entries) // (workers * 8) or 1))
        )
    else:
        threads_before = cv2.getNumThreads()
        _init_worker(root, opts)
        results = map(_encode_job, entries)
    try:
        with recordio.IndexedRecordWriter(summary.idx, summary.rec, atomic=True) as writer:
            for done, (entry, data, error) in enumerate(results, 1):
                if data is None:
                    skip(entry, error or "unknown error")
                else:
                    writer.write_idx(entry.index, data)
                    summary.written += 1
                if on_progress:
                    on_progress(done, summary.total)
            summary.bytes = writer.tell()
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        else:
            cv2.setNumThreads(threads_before)
    summary.seconds = time.perf_counter() - start
    return summary


def find_lists(prefix: str | os.PathLike) -> tuple[str, list[str]]:
    """im2rec's rec-mode search: every ``.lst`` in the working folder whose path starts with ``prefix``."""
    prefix = os.path.abspath(prefix)
    working_dir = prefix if os.path.isdir(prefix) else os.path.dirname(prefix)
    if not os.path.isdir(working_dir):
        return working_dir, []
    found = sorted(
        os.path.join(working_dir, f)
        for f in os.listdir(working_dir)
        if os.path.isfile(os.path.join(working_dir, f))
        and os.path.join(working_dir, f).startswith(prefix)
        and f.endswith(".lst")
    )
    return working_dir, found


# --------------------------------------------------------------------------- one step: class folders -> train/val


class DatasetLayoutError(UserError):
    pass


def class_folders(
    root: str | os.PathLike, exts: Sequence[str] = DEFAULT_EXTS, confinement: Confinement | None = None
) -> list[tuple[str, list[str]]]:
    """``[(class name, [relative image paths])]`` for a folder of class folders, sorted by name.

    Hidden files and folders are ignored; images are found at any depth below a class folder. Links are followed
    while they stay inside ``confinement`` (``root`` itself when None, skipping the rest with a warning).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"{root}: no such folder")
    confinement = confinement or Confinement([root], refuse=False, where=f"the image folder {root}")
    classes = []
    for sub in confinement.keep(
        sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), lambda p: p, root
    ):
        images = [
            os.path.relpath(path, root) for path in walk_files(sub, confinement) if is_image_name(path.name, exts)
        ]
        if images:
            classes.append((sub.name, images))
    return classes


@dataclass
class FolderSplit:
    classes: list[str]
    train: list[ListEntry]
    val: list[ListEntry]
    test: list[ListEntry]


def split_class_folders(
    root: str | os.PathLike,
    *,
    val_ratio: float = 0.2,
    test_ratio: float = 0.0,
    exts: Sequence[str] = DEFAULT_EXTS,
    seed: int = SHUFFLE_SEED,
) -> FolderSplit:
    """A stratified split: every class gives the same share of its images to validation (and test)."""
    if not 0 <= val_ratio < 1 or not 0 <= test_ratio < 1 or val_ratio + test_ratio >= 1:
        raise ValueError(
            f"val_ratio ({val_ratio}) and test_ratio ({test_ratio}) must be in [0, 1) and leave images for training"
        )
    found = class_folders(root, exts)
    if not found:
        raise DatasetLayoutError(
            f"{root}: no images found. Expected one sub-folder per class holding {', '.join(exts)} files, "
            f"e.g. {Path(root) / 'blue_jay' / 'img001.jpg'}"
        )
    if len(found) == 1:
        raise DatasetLayoutError(
            f"{root}: only one class folder ({found[0][0]!r}) holds images; classification needs at least two. "
            "Put each class's images in its own sub-folder."
        )
    rng = random.Random(seed)
    train, val, test = [], [], []
    index = 0
    for label, (_name, images) in enumerate(found):
        items = []
        for path in images:
            items.append(ListEntry(index, path, (float(label),)))
            index += 1
        rng.shuffle(items)
        n_val = math.floor(len(items) * val_ratio + 0.5) if val_ratio else 0
        n_test = math.floor(len(items) * test_ratio + 0.5) if test_ratio else 0
        if val_ratio and n_val == 0 and len(items) > 1:
            n_val = 1
        val += items[:n_val]
        test += items[n_val : n_val + n_test]
        train += items[n_val + n_test :]
    for part in (train, val, test):
        rng.shuffle(part)
    return FolderSplit([name for name, _ in found], train, val, test)
