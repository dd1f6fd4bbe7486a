"""Worker processes for decoding and encoding images."""

from __future__ import annotations

import multiprocessing as mp
from multiprocessing.pool import Pool


def process_pool(workers: int, initializer=None, initargs=()) -> Pool:
    """A pool whose workers never inherit a live OpenCV or OpenMP thread pool.

    Plain ``fork`` copies the parent's thread-pool state without its threads,
    and OpenCV then deadlocks in the child (seen here: ``cv2.setNumThreads``
    blocking in ``pthread_cond_destroy``). The fork server is a clean process
    that has only imported the worker modules, so forking from it is both safe
    and cheap; platforms without it spawn.
    """
    if "forkserver" in mp.get_all_start_methods():
        server = mp.get_context("forkserver")
        server.set_forkserver_preload(["roost.data.im2rec", "roost.data.explore"])
        return server.Pool(workers, initializer=initializer, initargs=initargs)
    return mp.get_context("spawn").Pool(workers, initializer=initializer, initargs=initargs)
