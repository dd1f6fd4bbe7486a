"""Worker processes for decoding and encoding images: started safely, and never outliving their parent."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from multiprocessing import forkserver
from multiprocessing.context import BaseContext
from multiprocessing.pool import Pool
from typing import Any

from roost.system import die_with_parent


def worker_context(preload: Sequence[str] = ()) -> BaseContext:
    """Where workers come from: a fork server where the platform has one, else spawn.

    Plain ``fork`` copies the parent's thread-pool state without its threads,
    and OpenCV then deadlocks in the child (seen here: ``cv2.setNumThreads``
    blocking in ``pthread_cond_destroy``). The fork server is a clean process
    that has only imported the worker modules, so forking from it is both safe
    and cheap. It arms the parent-death signal as it starts (``roost._forkserver``),
    and every worker does in :func:`arm_worker`: a killed job or tool leaves no
    process behind.
    """
    if "forkserver" in mp.get_all_start_methods():
        # the server starts from this process and inherits its environment: it learns its parent from here
        os.environ["ROOST_FORKSERVER_PARENT"] = str(os.getpid())
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["roost._forkserver", *preload])
        # started now, not with the first worker: its imports (PyTorch, ~2.5 s) then run on the other core
        # while this process builds its model and optimizer, instead of after them
        forkserver.ensure_running()
        return ctx
    return mp.get_context("spawn")


def arm_worker() -> None:
    """In a worker process: end when the process that forked it ends (the fork server, whose pid a forked
    worker knows from its memory even when the server died a moment before: ``getppid()`` would say 1)."""
    import sys

    server = sys.modules.get("roost._forkserver")
    die_with_parent(getattr(server, "PID", None) or os.getppid())


def _start_worker(initializer: Callable[..., Any] | None, initargs: tuple) -> None:
    arm_worker()
    if initializer is not None:
        initializer(*initargs)


def process_pool(workers: int, initializer: Callable[..., Any] | None = None, initargs: tuple = ()) -> Pool:
    """A pool of armed workers from :func:`worker_context`."""
    ctx = worker_context(["roost.data.im2rec", "roost.data.explore"])
    return ctx.Pool(workers, initializer=_start_worker, initargs=(initializer, initargs))
