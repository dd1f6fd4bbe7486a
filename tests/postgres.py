"""A throwaway PostgreSQL cluster for the tests: initdb in a temporary folder, a free loopback port, no fsync.

As root, PostgreSQL's programs refuse to run, so they run as the ``postgres`` user
that Debian's package creates. Every test that asks for a database gets a new one
in the same cluster.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from roost.system import free_port


class Unavailable(Exception):
    """Why there is no PostgreSQL to test against."""


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        return Path(pg_ctl).resolve().parent
    raise Unavailable("PostgreSQL is not installed (Debian's postgresql package; `make test` installs it as root)")


class Cluster:
    def __init__(self) -> None:
        self.bindir = _bindir()
        # not under pytest's temporary folder: as root that is private to root, and postgres could not enter it
        self.root = root = Path(tempfile.mkdtemp(prefix="roost-postgres-"))
        self.data = root / "data"
        self.port = free_port()
        self.user = None if os.geteuid() != 0 else "postgres"
        if self.user:
            try:
                shutil.chown(root, self.user)
            except (LookupError, PermissionError) as err:
                raise Unavailable(f"cannot hand {root} to the postgres user ({err})") from None

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise Unavailable(f"{args[0]} failed: {(r.stderr or r.stdout).strip()[-500:]}")

    def start(self) -> Cluster:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        try:
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "roost", "--no-sync", "-E", "UTF8")
            self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")
        except Unavailable:
            shutil.rmtree(self.root, ignore_errors=True)
            raise
        return self

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except Unavailable:
            pass
        shutil.rmtree(self.root, ignore_errors=True)

    def new_database(self) -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=roost dbname=postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://roost@127.0.0.1:{self.port}/{name}"
