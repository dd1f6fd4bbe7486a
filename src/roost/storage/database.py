"""The server's database: SQLite in the data folder by default, PostgreSQL (or any SQLAlchemy URL) by configuration.

The schema is created and upgraded by Alembic migrations at start-up, so a
newer Roost opens an older database without losing anything.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"

Row = TypeVar("Row")


def fetch(s: Session, table: type[Row], key: Any) -> Row:
    """A row the caller knows exists (a job the runner is running); its absence is a bug, not a user's mistake."""
    row = s.get(table, key)
    if row is None:
        raise LookupError(f"{table.__name__} {key!r} is not in the database")
    return row


@contextmanager
def inserting(sessions: sessionmaker[Session], conflict: Callable[[], Exception]) -> Iterator[Session]:
    """A transaction that adds rows; if another request added one with the same key meanwhile (two creates of one
    name at the same moment), the loser gets ``conflict()`` - the error the API answers - instead of a crash."""
    try:
        with sessions.begin() as s:
            yield s
    except IntegrityError:
        raise conflict() from None


def database_url(data_dir: Path, url: str | None = None) -> str:
    return url or f"sqlite:///{(data_dir / 'roost.db').resolve()}"


def open_database(url: str) -> sessionmaker[Session]:
    if url.startswith("sqlite:///"):
        _private_sqlite_file(Path(url[len("sqlite:///") :]))
    engine = create_engine(url, future=True, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    migrate(engine)
    return sessionmaker(engine, expire_on_commit=False)


def _private_sqlite_file(path: Path) -> None:
    # SQLite gives its -wal and -shm files the database file's mode
    if path.exists():
        os.chmod(path, 0o600)
    elif path.parent.is_dir():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets the API read while the runner writes log lines; foreign keys enforce the cascades
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def migrate(engine: Engine, revision: str = "head") -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


#: the PostgreSQL schema Optuna's tables live in, beside Roost's
OPTUNA_SCHEMA = "optuna"


def optuna_storage(url: str, own_url: str | None = None) -> Any:
    """Optuna's RDB storage of tuning jobs' studies, on the server's database.

    Optuna and Roost both keep an Alembic version table named ``alembic_version``, and each takes the other's
    revision for its own, so Optuna's tables cannot share Roost's namespace: on PostgreSQL they live in the
    ``optuna`` schema of the same database, on SQLite in ``optuna.db`` beside the database file. Other databases
    need a URL of their own for Optuna (``own_url``: ``roost server --tuning-database-url``).
    """
    import optuna
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if own_url:
        own = own_url
    elif parsed.get_backend_name() == "sqlite" and parsed.database:
        own = str(parsed.set(database=str(Path(parsed.database).with_name("optuna.db"))))
        _private_sqlite_file(Path(parsed.database).with_name("optuna.db"))
        engine_kwargs["connect_args"] = {"timeout": 30}
    elif parsed.get_backend_name() == "postgresql":
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {OPTUNA_SCHEMA}"))
        engine.dispose()
        own = url
        engine_kwargs["connect_args"] = {"options": f"-csearch_path={OPTUNA_SCHEMA}"}
    else:
        raise ValueError(
            f"Optuna's tables cannot share a {parsed.get_backend_name()} database with Roost's: give tuning jobs "
            "a database of their own with --tuning-database-url"
        )
    return optuna.storages.RDBStorage(own, engine_kwargs=engine_kwargs)
