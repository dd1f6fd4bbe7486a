"""Lab 1's "explore the data set" step: counts, sizes, samples and warnings.

Works on a folder of class folders, an ``.lst`` with its image root, or a
``.rec`` (with or without ``.idx``). Every image is decoded - with the codec
im2rec and training use - so an image reported readable here will pack and
train.
"""

from __future__ import annotations

import json
import os
import random
import statistics
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from roost.data import im2rec
from roost.data.channels import class_names_from_list
from roost.data.images import DEFAULT_EXTS, ImageDecodeError, imdecode, imread
from roost.data.parallel import process_pool
from roost.formats import classes as names_file
from roost.formats import recordio
from roost.formats.lst import iter_list
from roost.paths import Confinement


@dataclass
class ClassStats:
    id: int
    name: str
    images: int = 0
    unreadable: int = 0


@dataclass
class Report:
    source: str
    kind: str  # "folder", "lst" or "rec"
    images: int
    classes: list[ClassStats]
    sizes: dict
    unreadable: list[tuple[str, str]]
    smaller_than_shape: int | None
    image_shape: tuple[int, int, int] | None
    warnings: list[str] = field(default_factory=list)
    multi_label: bool = False

    def hyperparameters(self) -> dict[str, int]:
        """What to train this data with, when it is the training channel: ``num_classes`` (the highest class id
        plus one, as labels index the output) and ``num_training_samples``."""
        return {
            "num_classes": max((c.id for c in self.classes), default=-1) + 1,
            "num_training_samples": self.images,
        }

    def to_json(self) -> str:
        d = asdict(self)
        d["unreadable"] = [{"image": p, "reason": r} for p, r in self.unreadable]
        return json.dumps(d, indent=2)


@dataclass
class _Item:
    ref: str  # a path, or "record <key>" for .rec input
    labels: tuple[float, ...]
    payload: bytes | None = None


# --------------------------------------------------------------------------- reading the sources


def _outside_note(confinement: Confinement) -> list[str]:
    n = len(confinement.skipped)
    if not n:
        return []
    return [
        f"{n} entr{'y' if n == 1 else 'ies'} outside {confinement.where} skipped (training refuses them), "
        f"e.g. {confinement.skipped[0]}"
    ]


def _folder_items(root: Path, exts, refuse: bool) -> tuple[list[_Item], list[str], list[str]]:
    confinement = Confinement(
        [root], refuse=refuse, where=f"the folder {root}", fix="links must stay inside it", quiet=True
    )
    found = im2rec.class_folders(root, exts, confinement)
    items = [_Item(str(root / p), (float(label),)) for label, (_, paths) in enumerate(found) for p in paths]
    return items, [name for name, _ in found], _outside_note(confinement)


def _lst_items(lst: Path, root: Path, refuse: bool) -> tuple[list[_Item], list[str] | None, list[str]]:
    errors: list = []
    entries = list(iter_list(lst, errors=errors))
    confinement = Confinement(
        [root],
        refuse=refuse,
        where=f"the image root {root}",
        fix=".lst paths must be relative paths below it",
        quiet=True,
    )
    entries = confinement.keep(entries, lambda e: root / e.path, lst)
    items = [_Item(str(root / e.path), e.labels) for e in entries]
    names = names_file.read(names_file.beside(lst)) or class_names_from_list(entries)
    return items, names, [f"ignored malformed line: {e}" for e in errors] + _outside_note(confinement)


def _rec_items(rec: Path) -> tuple[Iterator[_Item], int | None, recordio.RecordReader]:
    idx = recordio.index_path_for(rec)
    try:
        total = len(recordio.read_index(idx)) if idx.is_file() else None
    except recordio.DuplicateKeys:
        total = None  # counted while reading
    reader = recordio.RecordReader(rec, skip_corrupt=True)

    def gen() -> Iterator[_Item]:
        for offset, data in reader.iter_with_offsets():
            try:
                header, img = recordio.unpack(data)
            except ValueError as err:
                yield _Item(f"record at byte {offset}", (), None)
                reader.errors.append(recordio.RecordIOError(rec, offset, str(err)))
                continue
            labels = tuple(float(x) for x in np.atleast_1d(header.label))
            yield _Item(f"record id {header.id}", labels, img)

    return gen(), total, reader


def _measure(item: _Item) -> tuple[int, int] | str:
    try:
        img = imdecode(item.payload) if item.payload is not None else imread(item.ref)
    except ImageDecodeError as err:
        return str(err)
    return img.shape[1], img.shape[0]


def _init_measure_worker() -> None:
    import cv2

    cv2.setNumThreads(1)


# --------------------------------------------------------------------------- the report


@dataclass
class _Source:
    """What a folder, an .lst or a .rec gives to explore: its items, their count where known, the class names
    found beside it, notes about skipped entries, and the reader to close (a .rec)."""

    kind: str
    items: Iterator[_Item]
    total: int | None
    names: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    reader: recordio.RecordReader | None = None


def _open_source(source: Path, root: Path | None, exts, refuse_outside: bool) -> _Source:
    if source.is_dir():
        items, names, notes = _folder_items(source, exts, refuse_outside)
        if not items:
            raise im2rec.DatasetLayoutError(
                f"{source}: no images found in class sub-folders (looked for {', '.join(exts)})"
            )
        return _Source("folder", iter(items), len(items), names, notes)
    if source.suffix == ".lst":
        listed, listed_names, notes = _lst_items(source, root or source.parent, refuse_outside)
        return _Source("lst", iter(listed), len(listed), listed_names, notes)
    if source.suffix == ".rec":
        records, total, reader = _rec_items(source)
        # im2rec leaves the .lst it packed beside the .rec: its paths name the classes
        sibling = source.with_suffix(".lst")
        packed = names_file.read(names_file.beside(source)) or (
            class_names_from_list(iter_list(sibling, errors=[])) if sibling.is_file() else None
        )
        return _Source("rec", records, total, packed, reader=reader)
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file or folder")
    raise ValueError(f"{source}: expected a folder of class folders, an .lst file or a .rec file")


def _measure_all(
    src: _Source, num_workers: int, on_progress: Callable[[int, int | None], None] | None
) -> tuple[list[_Item], list[tuple[int, int] | str]]:
    """Every item with its (width, height) or the reason it cannot be decoded, in ``num_workers`` processes."""
    seen: list[_Item] = []
    results: list[tuple[int, int] | str] = []

    def tracked() -> Iterator[_Item]:
        for it in src.items:
            seen.append(it)
            yield it

    pool = None
    measured: Iterator[tuple[int, int] | str]
    try:
        if num_workers > 1:
            pool = process_pool(num_workers, initializer=_init_measure_worker)
            measured = pool.imap(_measure, tracked(), chunksize=8)
        else:
            measured = map(_measure, tracked())
        for done, res in enumerate(measured, 1):
            results.append(res)
            if on_progress:
                on_progress(done, src.total)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        if src.reader is not None:
            src.reader.close()
    return seen, results


def explore(
    source: str | os.PathLike,
    *,
    root: str | os.PathLike | None = None,
    image_shape: tuple[int, int, int] | None = None,
    min_per_class: int = 10,
    imbalance_ratio: float = 3.0,
    exts=DEFAULT_EXTS,
    num_workers: int = 1,
    on_progress: Callable[[int, int | None], None] | None = None,
    refuse_outside: bool = False,
) -> tuple[Report, dict[int, list[_Item]]]:
    """Scan ``source``; returns the report and, per class, a few items to show as samples.

    Images a list or a link places outside the image root (or the folder) are skipped with a warning, or refused
    with ``refuse_outside`` (the console of a shared server, which reads only what a job could).
    """
    source = Path(source)
    src = _open_source(source, Path(root) if root else None, exts, refuse_outside)
    seen, results = _measure_all(src, num_workers, on_progress)

    multi_label = any(len(it.labels) > 1 for it in seen)
    counts: Counter[int] = Counter()
    bad_counts: Counter[int] = Counter()
    samples: dict[int, list[_Item]] = {}
    sizes: list[tuple[int, int]] = []
    unreadable: list[tuple[str, str]] = []
    for it, res in zip(seen, results, strict=True):
        ids = [i for i, v in enumerate(it.labels) if v] if multi_label else [int(it.labels[0])] if it.labels else []
        for cid in ids:
            counts[cid] += 1
        if isinstance(res, str):
            unreadable.append((it.ref, res))
            for cid in ids:
                bad_counts[cid] += 1
        else:
            sizes.append(res)
            for cid in ids:
                samples.setdefault(cid, []).append(it)
    if src.reader is not None:
        for err in src.reader.errors:
            unreadable.append((f"byte {err.offset}", err.reason))

    names = src.names
    n_classes = max(len(names or []), (max(counts) + 1) if counts else 0)
    classes = [
        ClassStats(i, names[i] if names and i < len(names) else f"class {i}", counts.get(i, 0), bad_counts.get(i, 0))
        for i in range(n_classes)
    ]
    warnings = list(src.notes)
    warnings += _class_warnings(classes, min_per_class, imbalance_ratio, names, multi_label)
    if unreadable:
        warnings.append(
            f"{len(unreadable)} image(s) cannot be decoded; im2rec skips them and training would fail on them: "
            + ", ".join(p for p, _ in unreadable[:5])
            + (" ..." if len(unreadable) > 5 else "")
        )
    smaller = None
    if image_shape is not None:
        _, h, w = image_shape
        smaller = sum(1 for (iw, ih) in sizes if ih < h or iw < w)
        if smaller:
            warnings.append(
                f"{smaller} image(s) are smaller than {h}x{w} (image_shape {','.join(map(str, image_shape))}); "
                f"SageMaker fails training on them. Pack with --resize {max(h, w)} or choose a smaller image_shape."
            )
    rng = random.Random(0)
    picks = {cid: rng.sample(its, min(len(its), 8)) for cid, its in samples.items()}
    report = Report(
        source=str(source),
        kind=src.kind,
        images=len(seen),
        classes=classes,
        sizes=size_stats(sizes),
        unreadable=unreadable,
        smaller_than_shape=smaller,
        image_shape=image_shape,
        warnings=warnings,
        multi_label=multi_label,
    )
    return report, picks


def _class_warnings(classes, min_per_class, imbalance_ratio, names, multi_label) -> list[str]:
    out = []
    if len(classes) < 2:
        out.append(f"only {len(classes)} class found; image classification needs at least two")
    empty = [c for c in classes if c.images == 0]
    if empty:
        out.append(
            "class id(s) with no images: "
            + ", ".join(str(c.id) for c in empty)
            + " (labels must be consecutive from 0; num_classes counts them anyway)"
        )
    few = [c for c in classes if 0 < c.images < min_per_class]
    if few:
        out.append(
            f"{len(few)} class(es) have fewer than {min_per_class} images: "
            + ", ".join(f"{c.name} ({c.images})" for c in few[:10])
        )
    nonzero = [c.images for c in classes if c.images]
    if len(nonzero) >= 2 and max(nonzero) > imbalance_ratio * min(nonzero):
        big = max(classes, key=lambda c: c.images)
        small = min((c for c in classes if c.images), key=lambda c: c.images)
        out.append(
            f"classes are imbalanced: {big.name} has {big.images} images, {small.name} only {small.images} "
            f"({big.images / small.images:.1f}x); consider more data or use_weighted_loss"
            + ("" if multi_label else " (multi-label only) or resampling")
        )
    if names and len(classes) > len(names):
        out.append(f"labels go up to {len(classes) - 1} but classes.json names only {len(names)} classes")
    return out


def size_stats(sizes: list[tuple[int, int]], bins: int = 10) -> dict:
    if not sizes:
        return {"width": None, "height": None, "short_side": None, "histogram": None}

    def summary(values):
        return {"min": min(values), "median": statistics.median(values), "max": max(values)}

    widths = [w for w, _ in sizes]
    heights = [h for _, h in sizes]
    short = [min(w, h) for w, h in sizes]
    lo, hi = min(short), max(short)
    counts, edges = np.histogram(short, bins=bins if hi > lo else 1, range=(lo, hi if hi > lo else lo + 1))
    return {
        "width": summary(widths),
        "height": summary(heights),
        "short_side": summary(short),
        "histogram": {
            "of": "shorter side (px)",
            "edges": [round(float(e), 1) for e in edges],
            "counts": counts.tolist(),
        },
    }


# --------------------------------------------------------------------------- pictures


def _thumbnail(item: _Item, side: int = 96) -> np.ndarray | None:
    import cv2

    try:
        img = imdecode(item.payload) if item.payload is not None else imread(item.ref)
    except ImageDecodeError:
        return None
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    else:
        img = cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2RGB)
    scale = side / max(img.shape[:2])
    return cv2.resize(
        img, (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale))), interpolation=cv2.INTER_AREA
    )


def save_sample_grid(
    report: Report, picks: dict[int, list[_Item]], path: str | os.PathLike, *, per_class: int = 6, max_classes: int = 30
) -> Path:
    """A PNG with one row per class: its id, name and count, then ``per_class`` sample images."""
    from matplotlib.figure import Figure

    shown = [c for c in report.classes if c.id in picks][:max_classes]
    rows = max(1, len(shown))
    fig = Figure(figsize=(1.5 * per_class + 1.5, 1.5 * rows + 0.4))
    axes = fig.subplots(rows, per_class, squeeze=False)
    for r, cls in enumerate(shown):
        for c in range(per_class):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            its = picks.get(cls.id, [])
            if c < len(its) and (thumb := _thumbnail(its[c])) is not None:
                ax.imshow(thumb)
            if c == 0:
                ax.set_ylabel(f"{cls.id}: {cls.name}\n({cls.images})", rotation=0, ha="right", va="center", fontsize=9)
    title = f"{report.source}: {report.images} images, {len(report.classes)} classes"
    if len(report.classes) > len(shown):
        title += f" (first {len(shown)} shown)"
    fig.suptitle(title, fontsize=11)
    # leave the top strip (about 0.35 inch) to the title
    return _save(fig, path, top=1 - 0.35 / fig.get_figheight())


def save_size_plot(report: Report, path: str | os.PathLike) -> Path:
    """Histogram of the shorter image side (the one ``--resize`` acts on)."""
    from matplotlib.figure import Figure

    hist = report.sizes["histogram"]
    fig = Figure(figsize=(6, 3.2))
    ax = fig.subplots()
    if hist:
        edges, counts = hist["edges"], hist["counts"]
        ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", edgecolor="white")
    ax.set_xlabel("shorter side (px)")
    ax.set_ylabel("images")
    ax.set_title(f"Image sizes in {Path(report.source).name}")
    return _save(fig, path)


def _save(fig, path: str | os.PathLike, top: float = 1.0) -> Path:
    # Figure objects, not pyplot: no global backend or figure registry to leak
    fig.tight_layout(rect=(0, 0, 1, top))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out
