"""SageMaker augmented manifests: JSON Lines, one object per image (``{"source-ref": ..., "class": ...}``).

The first of a channel's ``AttributeNames`` names the image reference, the
second its label; other attributes (``*-metadata`` from Ground Truth) are
carried along and ignored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from roost.errors import UserError

#: the file names a manifest channel may hold (``classes.json`` beside it is not a manifest)
SUFFIXES = (".manifest", ".jsonl")


class ManifestError(UserError):
    pass


def is_manifest(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in SUFFIXES


def find_manifest(folder: Path) -> Path:
    """The one manifest of a channel folder."""
    found = sorted(p for p in folder.iterdir() if is_manifest(p) and p.is_file())
    if len(found) != 1:
        raise ManifestError(
            f"{folder}: an augmented-manifest channel must hold exactly one manifest file "
            f"({' or '.join(SUFFIXES)}), found {len(found)}"
        )
    return found[0]


def iter_objects(path: Path) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for every non-empty line; a line that is not a JSON object names itself."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ManifestError(f"{path}: line {lineno}: not a JSON object ({err.msg})") from None
            if not isinstance(obj, dict):
                raise ManifestError(f"{path}: line {lineno}: not a JSON object")
            yield lineno, obj


def guess_attribute_names(path: Path) -> list[str]:
    """``[image attribute, label attribute]`` when the first line leaves no doubt (one ``*-ref``, one label)."""
    first = next((obj for _, obj in iter_objects(path)), {})
    refs = [k for k in first if k.endswith("-ref")]
    labels = [k for k in first if not k.endswith(("-ref", "-metadata"))]
    if len(refs) == 1 and len(labels) == 1:
        return [refs[0], labels[0]]
    raise ManifestError(
        f"{path}: give AttributeNames (image attribute, label attribute); the first line has attributes {list(first)}"
    )
