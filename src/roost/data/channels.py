"""Training channels to samples: RecordIO, image files with an ``.lst``, class folders, augmented manifests.

Every source becomes a list of :class:`Sample` - where the image is (a record's
byte offset in one of the channel's ``.rec`` files, or an image file) and its
label(s) - checked against ``num_classes`` here, once, with errors that name the
file and the line or record. The user's mistakes raise :class:`ChannelError`
(a ``ClientError`` in SageMaker's terms).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np

from roost.data.im2rec import DatasetLayoutError, class_folders
from roost.data.images import DEFAULT_EXTS, is_image_name
from roost.errors import UserError
from roost.formats import classes, recordio
from roost.formats.lst import LstError, iter_list, parse_line
from roost.formats.manifest import iter_objects
from roost.formats.text import numbered_lines
from roost.paths import Confinement

log = logging.getLogger(__name__)


class ChannelError(UserError):
    """A data channel cannot be used as given."""


@dataclass(frozen=True)
class Sample:
    rec: int  # index into the channel's .rec files, or -1 for an image file
    where: int | str  # byte offset of the record, or the image's path
    labels: tuple[float, ...]

    def describe(self, rec_files: list[Path]) -> str:
        return f"{rec_files[self.rec]} record at byte {self.where}" if self.rec >= 0 else str(self.where)


@dataclass
class ChannelData:
    """One channel resolved to samples: where each image is, its labels, and the class names when known."""

    samples: list[Sample]
    rec_files: list[Path] = field(default_factory=list)
    class_names: list[str] | None = None
    #: ShardedByS3Key: each host holds its own part, so processes share only what their host holds
    sharded_by_host: bool = False


# --------------------------------------------------------------------------- label rules


def check_labels(labels: tuple[float, ...], num_classes: int, multi_label: bool, where: str) -> None:
    if multi_label:
        if len(labels) != num_classes:
            raise ChannelError(
                f"{where}: Mismatch between number of labels in the multi-label data ({len(labels)}) and the "
                f"num_classes parameter ({num_classes}); multi-label data needs one 0/1 label per class"
            )
        bad = [v for v in labels if v not in (0.0, 1.0)]
        if bad:
            raise ChannelError(f"{where}: multi-label values must be 0 or 1 (multi-hot), found {bad[0]:g}")
        return
    if not labels:
        raise ChannelError(f"{where}: no label")
    label = labels[0]
    if not float(label).is_integer() or not 0 <= label < num_classes:
        raise ChannelError(
            f"{where}: label {label:g} is outside 0..{num_classes - 1} (num_classes={num_classes}); "
            "labels must be class ids counted from 0"
        )
    if len(labels) > 1:
        raise ChannelError(
            f"{where}: {len(labels)} labels for one image, but multi_label is 0; set multi_label=1 "
            "or keep one label per image"
        )


def class_names_from_list(entries) -> list[str] | None:
    """Class names from an ``im2rec --list --recursive`` list: the one folder each label's images sit in."""
    folder_of: dict[int, set[str]] = {}
    for e in entries:
        if len(e.labels) != 1:
            return None
        folder_of.setdefault(int(e.labels[0]), set()).add(os.path.dirname(e.path))
    if not folder_of or any(len(f) != 1 for f in folder_of.values()):
        return None
    names = {label: next(iter(f)) for label, f in folder_of.items()}
    if len(set(names.values())) != len(names) or "" in names.values():
        return None
    return [names.get(i, f"class {i}") for i in range(max(names) + 1)]


def channel_class_names(folder: Path, num_classes: int) -> list[str] | None:
    """Class names: a ``classes.json`` in the channel, else the folders in the paths of an ``.lst`` there
    (im2rec leaves the list it packed beside the ``.rec``)."""
    names = classes.read(folder / classes.FILE)
    if names is None:
        lists = sorted(folder.glob("*.lst")) if folder.is_dir() else []
        if len(lists) == 1:
            found = class_names_from_list(iter_list(lists[0], errors=[]))
            if found and len(found) == num_classes:
                return found
        return None
    if len(names) != num_classes:
        log.warning(
            "%s names %d classes but num_classes=%d; ignoring the names", folder / classes.FILE, len(names), num_classes
        )
        return None
    return names


# --------------------------------------------------------------------------- RecordIO


def find_rec_files(channel: str | os.PathLike) -> list[Path]:
    """``.rec`` files of a channel: the file itself, or every ``.rec`` below a folder (sorted)."""
    p = Path(channel)
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted(f for f in p.rglob("*.rec") if f.is_file())
        if files:
            return files
        raise ChannelError(f"no .rec files found in {p}; a RecordIO channel holds one or more .rec files")
    raise ChannelError(f"{p}: no such file or folder")


def _record_offsets(path: Path) -> list[int]:
    idx_path = recordio.index_path_for(path)
    if not idx_path.is_file():
        return recordio.scan_offsets(path)
    try:
        return list(recordio.read_index(idx_path).values())
    except recordio.DuplicateKeys as err:
        # made by MXNet's im2rec from a list with repeated indices: the .idx hides records, the .rec has them all
        log.warning("%s; reading every record of %s instead", err, path)
        return recordio.scan_offsets(path)


def recordio_samples(files: list[Path], num_classes: int, multi_label: bool) -> list[Sample]:
    """Every record's location and labels, reading only headers."""
    samples = []
    for fi, path in enumerate(files):
        with recordio.RecordReader(path) as reader:
            offsets = _record_offsets(path)
            for off in offsets:
                where = f"{path} record at byte {off}"
                try:
                    header = reader.read_header_at(off)
                except ValueError as err:
                    raise ChannelError(f"{where}: {err}") from None
                labels = (
                    tuple(float(x) for x in np.atleast_1d(header.label)) if header.flag > 0 else (float(header.label),)
                )
                if not multi_label and len(labels) > 1:
                    labels = labels[:1]  # MXNet's single-label iterator reads the first label
                check_labels(labels, num_classes, multi_label, where)
                samples.append(Sample(fi, off, labels))
    return samples


# --------------------------------------------------------------------------- image files


def _image_root(channel: Path) -> Path:
    if not channel.is_dir():
        raise ChannelError(f"{channel}: an image channel must be a folder (the root the .lst paths start from)")
    return channel


def find_lst(channel: str | os.PathLike) -> Path:
    """The one ``.lst`` of a ``*_lst`` channel (a file, or a folder holding exactly one)."""
    p = Path(channel)
    if p.is_file():
        return p
    found = sorted(p.glob("*.lst")) if p.is_dir() else []
    if len(found) != 1:
        raise ChannelError(
            f"{p}: a list channel must hold exactly one .lst file, found {len(found)}"
            + (f" ({', '.join(f.name for f in found)})" if found else "")
        )
    return found[0]


def lst_samples(lst: Path, root: Path, num_classes: int, multi_label: bool, confine: bool = True) -> list[Sample]:
    """Image mode: ``index<TAB>label(s)<TAB>path`` with paths relative to the channel root.

    An entry that leads out of the channel (``../``, an absolute path, a link) is refused when ``confine`` (a job
    on a shared server reads only its own data) and skipped with a warning without it (the user's own files).
    """
    root = _image_root(root)
    want_fields = num_classes + 2 if multi_label else 3
    entries = []
    lines = [(n, line) for n, line in numbered_lines(lst, lambda n, m: LstError(lst, n, m)) if line.strip()]
    for lineno, line in lines:
        where = f"{lst}: line {lineno}"
        fields = len(line.strip().split("\t"))
        if fields != want_fields:
            raise ChannelError(
                f"{where}: expected {want_fields} tab-separated fields "
                + ("(index, one 0/1 label per class, path)" if multi_label else "(index, label, path)")
                + f", found {fields}"
            )
        try:
            entry = parse_line(line, lst, lineno)
        except LstError as err:
            raise ChannelError(str(err)) from None
        check_labels(entry.labels, num_classes, multi_label, where)
        entries.append((lineno, entry, root / entry.path))
    confinement = Confinement(
        [root],
        refuse=confine,
        where=f"the image channel {root}",
        fix=".lst paths must be relative paths below the channel's folder",
    )
    samples, missing = [], []
    for lineno, entry, path in confinement.keep(entries, lambda e: e[2], lst, lambda e: e[0]):
        if not path.is_file():
            missing.append((lineno, entry.path))
            continue
        samples.append(Sample(-1, str(path), entry.labels))
    if missing:
        lineno, rel = missing[0]
        raise ChannelError(
            f"{lst}: {len(missing)} image(s) listed but not found under the channel root {root}, "
            f"e.g. line {lineno}: {rel}; .lst paths must be relative to the image channel's folder"
        )
    return samples


def folder_samples(root: Path, exts=DEFAULT_EXTS, confine: bool = True) -> tuple[list[Sample], list[str]]:
    """A folder of class folders, no ``.lst`` needed: classes in sorted order, their names kept. A link that leads
    out of the folder is refused when ``confine``, skipped with a warning without it."""
    root = _image_root(root)
    confinement = Confinement(
        [root], refuse=confine, where=f"the image channel {root}", fix="links must stay inside it"
    )
    try:
        found = class_folders(root, exts, confinement)
    except DatasetLayoutError as err:
        raise ChannelError(str(err)) from None
    if not found:
        raise ChannelError(
            f"{root}: no images in class sub-folders (looked for {', '.join(exts)}), and no .lst channel was given"
        )
    ignored = sum(
        1
        for p in root.rglob("*")
        if p.is_file()
        and (not is_image_name(p.name, exts) or any(part.startswith(".") for part in p.relative_to(root).parts))
    )
    if ignored:
        log.info("%s: ignored %d hidden or non-image file(s)", root, ignored)
    samples = [Sample(-1, str(root / rel), (float(label),)) for label, (_, paths) in enumerate(found) for rel in paths]
    return samples, [name for name, _ in found]


# --------------------------------------------------------------------------- augmented manifests


def _ref_to_path(ref: str, base: Path) -> Path:
    parsed = urlparse(ref)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme in ("", None):
        p = Path(ref)
        return p if p.is_absolute() else base / p
    raise ChannelError(f"image reference {ref!r}: only local paths and file:// URIs are supported here")


def _manifest_labels(value, label_format: str, num_classes: int, multi_label: bool, where: str) -> tuple[float, ...]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ChannelError(f"{where}: label {value!r} is neither a number nor a JSON array") from None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if multi_label:
            raise ChannelError(f"{where}: multi_label=1 needs a JSON array label, found {value!r}")
        return (float(value),)
    if not isinstance(value, list):
        raise ChannelError(f"{where}: unsupported label {value!r}")
    if label_format == "class-id":
        ids = []
        for v in value:
            if not isinstance(v, (int, float)) or not float(v).is_integer() or not 0 <= v < num_classes:
                raise ChannelError(f"{where}: class id {v!r} is outside 0..{num_classes - 1} (label-format=class-id)")
            ids.append(int(v))
        if not multi_label:
            if len(ids) != 1:
                raise ChannelError(f"{where}: {len(ids)} class ids for one image, but multi_label is 0")
            return (float(ids[0]),)
        return tuple(1.0 if c in ids else 0.0 for c in range(num_classes))
    return tuple(float(v) for v in value)


def manifest_samples(
    manifest: Path,
    attribute_names: list[str],
    label_format: str,
    num_classes: int,
    multi_label: bool,
    confine_to: Path | None = None,
) -> list[Sample]:
    """JSON Lines, one object per image: the first attribute the image reference, the second its label.

    ``confine_to``: every image must lie below this folder (a job's channel on a shared server); without it (the
    user's own files) an image outside the manifest's folder is skipped with a warning.
    """
    if len(attribute_names) != 2:
        raise ChannelError(
            f"AttributeNames must name the image attribute and then the label attribute, e.g. "
            f"['source-ref', 'class']; got {attribute_names}"
        )
    if label_format not in ("multi-hot", "class-id"):
        raise ChannelError(f"label-format {label_format!r} is not supported: use multi-hot or class-id")
    ref_key, label_key = attribute_names
    base = manifest.resolve().parent
    confinement = Confinement(
        [confine_to or base],
        refuse=confine_to is not None,
        where=f"the channel {confine_to}" if confine_to else f"the manifest's folder {base}",
        fix="a manifest may reference only images of its own channel",
    )
    entries = []
    for lineno, obj in iter_objects(manifest):
        where = f"{manifest}: line {lineno}"
        for key in (ref_key, label_key):
            if key not in obj:
                raise ChannelError(f"{where}: no {key!r} attribute (AttributeNames are {attribute_names})")
        entries.append((lineno, obj, _ref_to_path(str(obj[ref_key]), base)))
    samples = []
    for lineno, obj, path in confinement.keep(entries, lambda e: e[2], manifest, lambda e: e[0]):
        where = f"{manifest}: line {lineno}"
        if not path.is_file():
            raise ChannelError(f"{where}: image {obj[ref_key]!r} not found")
        labels = _manifest_labels(obj[label_key], label_format, num_classes, multi_label, where)
        check_labels(labels, num_classes, multi_label, where)
        samples.append(Sample(-1, str(path), labels))
    if not samples and confinement.skipped:
        raise ChannelError(
            f"{manifest}: the manifest has no lines inside its folder: its {len(confinement.skipped)} image(s) lie "
            f"outside {base} (e.g. {confinement.skipped[0]}); put the manifest in a folder that holds its images"
        )
    if not samples:
        raise ChannelError(f"{manifest}: the manifest has no lines")
    return samples


def check_disjoint(train: list[Sample], validation: list[Sample]) -> None:
    """SageMaker's trap: train and validation must not be the same images."""
    train_files = {os.path.realpath(str(s.where)) for s in train if s.rec < 0}
    shared = [s.where for s in validation if s.rec < 0 and os.path.realpath(str(s.where)) in train_files]
    if shared:
        raise ChannelError(
            f"{len(shared)} of the {len(validation)} validation images are also training images (e.g. {shared[0]}); "
            "train and validation must hold different images, in different folders"
        )
