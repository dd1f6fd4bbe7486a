"""Imported by the multiprocessing fork servers Roost starts (their preload list), for its side effect.

A fork server is a process of its own; if the process that started it is
killed, it and the workers forked from it would live on, holding memory. Armed
here, it gets SIGKILL when its parent ends; the workers it forks arm the same
signal themselves (``roost.system.die_with_parent`` in their initialisers).
"""

import os

from roost.system import die_with_parent

die_with_parent(os.getppid())
