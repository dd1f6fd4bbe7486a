"""Imported by the multiprocessing fork servers Roost starts (their preload list), for its side effect.

A fork server is a process of its own; if the process that started it is
killed, it and the workers forked from it would live on, holding memory. Armed
here, it gets SIGKILL when its parent ends; the workers it forks arm the same
signal themselves (``roost.system.die_with_parent`` in their initialisers).
"""

import os

from roost.system import die_with_parent

#: the process that started this fork server, as it named itself before the start: read here, ``getppid()``
#: would already say 1 when that process died while the server started, and the signal would never come
PARENT = int(os.environ.get("ROOST_FORKSERVER_PARENT") or os.getppid())
#: this fork server; the workers forked from it end when it ends (``roost.data.parallel.arm_worker``)
PID = os.getpid()

die_with_parent(PARENT)
