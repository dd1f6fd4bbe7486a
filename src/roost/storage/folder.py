"""The server's data folder: private to the server's user, and held by one server at a time.

Two servers on one folder would each think they own its jobs: the second's
restart handling would kill the first's running job, and both would start the
queued ones. :func:`claim` takes an exclusive lock on ``server.lock`` for the
life of the process (the kernel drops it when the process ends, however it ends)
and refuses with the holder's pid when another process has it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from roost.errors import UserError

LOCK_FILE = "server.lock"


class FolderInUse(UserError):
    pass


def make_private(folder: Path) -> Path:
    """Create ``folder`` if needed; only its owner may enter it (jobs, keys and the database live there)."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    return folder


def create_private_file(path: Path, text: str) -> None:
    """Write a new file that is 0600 from its first byte (not chmod'ed after the secret is already in it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def claim(folder: Path) -> IO[str]:
    """Lock ``folder`` for this process; keep the returned file open as long as the server runs."""
    handle = open(folder / LOCK_FILE, "a+", encoding="utf-8")  # held for the life of the process
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise FolderInUse(
            f"the data folder {folder} is in use by another Roost server (pid {holder}); stop that one, or give this "
            "one another --data-dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
