"""MXNet ``.lst`` image lists: ``index<TAB>label[<TAB>label...]<TAB>relative/path``.

Written exactly as MXNet 1.x ``im2rec.py`` writes them (``%d`` index, ``%f``
labels); read with MXNet's rules (tab-separated, at least three fields, first
is the integer index, last the path, the ones between float labels), but a
malformed line is reported with its file and line number instead of being
printed and dropped silently.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from roost.errors import UserError
from roost.formats.text import numbered_lines


@dataclass(frozen=True)
class ListEntry:
    index: int
    path: str
    labels: tuple[float, ...]

    @property
    def label(self) -> float:
        return self.labels[0]


class LstError(UserError):
    def __init__(self, path: str | os.PathLike, lineno: int, message: str) -> None:
        self.path = os.fspath(path)
        self.lineno = lineno
        super().__init__(f"{self.path}: line {lineno}: {message}")


def format_entry(entry: ListEntry) -> str:
    # MXNet writes "%d\t", "%f\t" per label, then "%s\n"; the same formats, spelled for format()
    return f"{entry.index:d}\t" + "".join(f"{label:f}\t" for label in entry.labels) + f"{entry.path}\n"


def write_list(path: str | os.PathLike, entries: Iterable[ListEntry]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for entry in entries:
            f.write(format_entry(entry))


def parse_line(line: str, path: str | os.PathLike = "<lst>", lineno: int = 0) -> ListEntry:
    fields = [f.strip() for f in line.strip().split("\t")]
    if len(fields) < 3:
        raise LstError(
            path,
            lineno,
            f"expected at least 3 tab-separated fields (index, label(s), path), found {len(fields)}: {line.strip()!r}",
        )
    try:
        index = int(fields[0])
    except ValueError:
        raise LstError(path, lineno, f"the first field must be an integer index, found {fields[0]!r}") from None
    try:
        labels = tuple(float(x) for x in fields[1:-1])
    except ValueError:
        raise LstError(path, lineno, f"labels must be numbers, found {fields[1:-1]!r}") from None
    return ListEntry(index, fields[-1], labels)


def iter_list(path: str | os.PathLike, *, errors: list[LstError] | None = None) -> Iterator[ListEntry]:
    """Entries of an ``.lst`` file.

    A malformed line raises :class:`LstError`, unless ``errors`` is given: then
    it is appended there and skipped, which is what MXNet's ``read_list`` does.
    """
    for lineno, line in numbered_lines(path, lambda n, message: LstError(path, n, message)):
        if not line.strip():
            continue
        try:
            yield parse_line(line, path, lineno)
        except LstError as err:
            if errors is None:
                raise
            errors.append(err)


def read_list(path: str | os.PathLike) -> list[ListEntry]:
    return list(iter_list(path))
