"""The one "inside the root" rule, for every reader of user paths.

Lists (``.lst``), manifests, class folders, channels, the console's data
explorer, transform inputs and the server's data roots all name files by paths
a user wrote; any of them may lead elsewhere (``../``, an absolute path, a
``file://`` URI, a symbolic link). Every reader asks the same question here:
does the path, with every link resolved, lie below one of these folders?

What happens to a path that does not depends on who reads it, and is chosen
once per reader by :class:`Confinement`:

* a shared server (``refuse=True``) refuses it with :class:`OutsideRoot`, which
  names the path and the fix: nothing outside its folders is read;
* the command-line tools, on the user's own files (``refuse=False``), skip it
  and say so in one warning that counts the skipped entries and names the first.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from roost.errors import UserError

log = logging.getLogger("roost.paths")

T = TypeVar("T")


class OutsideRoot(UserError):
    """A user's path that leads out of the folders its reader may read."""


def real(path: str | os.PathLike) -> str:
    """``path`` absolute, with every symbolic link resolved (what the kernel opens)."""
    return os.path.realpath(path)


def inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether ``path``, with links resolved, is ``folder`` or lies below it (its links resolved too)."""
    target, base = real(path), real(folder)
    return target == base or target.startswith(base.rstrip(os.sep) + os.sep)


class Confinement:
    """Folders that user paths may lead into, and what to do with a path that leads elsewhere.

    ``where`` says what the folders are in messages ("the image root /data/imgs", "the folders this server reads
    and writes (...)"); ``fix`` what to do about a path outside them.
    """

    #: what a refused path raises (a server's data roots raise a storage error its callers already answer)
    error: type[OutsideRoot] = OutsideRoot

    def __init__(
        self,
        folders: Sequence[str | os.PathLike],
        *,
        refuse: bool,
        where: str | None = None,
        fix: str = "",
        quiet: bool = False,
    ) -> None:
        if not folders:
            raise ValueError("a confinement needs at least one folder")
        self.folders = [Path(real(f)) for f in folders]
        self.refuse = refuse
        self.where = where or ", ".join(map(str, self.folders))
        self.fix = fix or "put the files below it, or give a folder that holds them all"
        #: every path skipped so far; ``quiet`` leaves the warning to the caller (a report that lists them)
        self.skipped: list[str] = []
        self.quiet = quiet

    def admits(self, path: str | os.PathLike) -> bool:
        return any(inside(path, folder) for folder in self.folders)

    def check(self, path: str | os.PathLike, what: str) -> Path:
        """``path`` with links resolved, if it lies inside; else :class:`OutsideRoot` whatever ``refuse`` says
        (for a path the reader cannot do without: a channel, an output location, a list itself)."""
        if not self.admits(path):
            raise self.error(f"{what} {os.fspath(path)} is outside {self.where}; {self.fix}")
        return Path(real(path))

    def keep(
        self,
        items: Iterable[T],
        path_of: Callable[[T], str | os.PathLike],
        source: str | os.PathLike,
        line_of: Callable[[T], int] | None = None,
    ) -> list[T]:
        """The ``items`` whose path lies inside. One outside is refused (:class:`OutsideRoot`, naming ``source``,
        the line when ``line_of`` tells it, and the entry) or, for the command-line tools, skipped with one
        warning for them all."""
        kept: list[T] = []
        skipped: list[str] = []
        for item in items:
            path = path_of(item)
            if self.admits(path):
                kept.append(item)
            elif self.refuse:
                line = f"line {line_of(item)}: " if line_of else ""
                raise self.error(f"{os.fspath(source)}: {line}{os.fspath(path)} is outside {self.where}; {self.fix}")
            else:
                skipped.append(os.fspath(path))
        self.skip(source, skipped)
        return kept

    def skip(self, source: str | os.PathLike, paths: Sequence[str]) -> None:
        self.skipped += paths
        if paths and not self.quiet:
            count = f"{len(paths)} entr{'y' if len(paths) == 1 else 'ies'}"
            log.warning("%s: skipped %s outside %s, e.g. %s", os.fspath(source), count, self.where, paths[0])


def walk_files(folder: str | os.PathLike, confinement: Confinement | None = None) -> Iterator[Path]:
    """Every file below ``folder`` at any depth, in sorted order, hidden names left out, links followed while they
    stay inside ``confinement`` (``folder`` itself when None). A link to a folder already walked (a cycle) is walked
    once; files whose links lead out are refused or skipped as the confinement says."""
    root = Path(folder)
    confinement = confinement or Confinement([root], refuse=False, where=f"the folder {root}")
    seen: set[str] = set()
    skipped: list[str] = []

    def walk(directory: Path) -> Iterator[Path]:
        key = real(directory)
        if key in seen:
            return
        seen.add(key)
        try:
            children = sorted(directory.iterdir())
        except OSError as err:
            log.warning("%s: cannot list (%s)", directory, err.strerror or err)
            return
        for child in children:
            if child.name.startswith("."):
                continue
            if not confinement.admits(child):
                if confinement.refuse:
                    raise confinement.error(f"{child} leads outside {confinement.where}; {confinement.fix}")
                skipped.append(str(child))
            elif child.is_dir():
                yield from walk(child)
            elif child.is_file():
                yield child

    yield from walk(root)
    confinement.skip(root, skipped)
