"""The database: migrations build exactly the tables the code maps, on SQLite and PostgreSQL."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from roost.storage.database import fetch, migrate, open_database
from roost.storage.tables import Base, TrainingJob


def test_migrations_match_the_tables(database_url):
    engine = create_engine(database_url)
    migrate(engine)
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert differences == []


def test_opening_twice_upgrades_nothing_and_keeps_rows(database_url):
    sessions = open_database(database_url)
    with sessions.begin() as s:
        s.add(
            TrainingJob(
                name="kept",
                arn="arn",
                request={},
                status="Completed",
                secondary_status="Completed",
                creation_time=1.0,
                last_modified_time=1.0,
                stop_requested=False,
                log_stream="kept/algo-1",
            )
        )
    again = open_database(database_url)
    with again() as s:
        assert fetch(s, TrainingJob, "kept").status == "Completed"
        assert "alembic_version" in inspect(s.get_bind()).get_table_names()
