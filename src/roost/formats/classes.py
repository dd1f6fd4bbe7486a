"""``classes.json``: a data set's class names, a JSON list whose position *i* names class id *i*.

``roost pack`` writes it beside the ``.rec`` files it makes; ``roost train``, a server job, ``roost explore`` and
the console read it from beside a channel's files. A JSON object of ``{"id": name}`` is read too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from roost.errors import UserError

FILE = "classes.json"
#: a names file larger than this is not a list of class names (100,000 classes of 20 characters is 2.2 MB)
MAX_BYTES = 8 * 1024 * 1024


class ClassNamesError(UserError):
    """A ``classes.json`` that does not name classes."""


def beside(path: str | os.PathLike) -> Path:
    """Where the names of ``path``'s data are: in the folder itself, or beside a file."""
    p = Path(path)
    return p / FILE if p.is_dir() else p.parent / FILE


def read(path: str | os.PathLike) -> list[str] | None:
    """The class names in ``path`` (a ``classes.json``), or None when there is no such file."""
    p = Path(path)
    if not p.is_file():
        return None
    if p.stat().st_size > MAX_BYTES:
        raise ClassNamesError(f"{p}: {p.stat().st_size} bytes is too large for a list of class names")
    try:
        names = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ClassNamesError(f"{p}: not a JSON list of class names ({err})") from None
    if isinstance(names, dict):
        try:
            names = [names[k] for k in sorted(names, key=int)]
        except ValueError:
            raise ClassNamesError(f"{p}: the keys of a class-name object must be class ids (0, 1, ...)") from None
    if not isinstance(names, list) or not all(isinstance(n, (str, int, float)) for n in names):
        raise ClassNamesError(f'{p}: expected a JSON list of class names, e.g. ["bird", "cat"]')
    return [str(n) for n in names]


def write(path: str | os.PathLike, names: list[str] | tuple[str, ...]) -> None:
    """``classes.json`` at ``path``, written whole or not at all."""
    p = Path(path)
    tmp = p.with_name(p.name + ".partial")
    tmp.write_text(json.dumps(list(names), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, p)
