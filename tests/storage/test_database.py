"""The database: migrations build exactly the tables the code maps, on SQLite and PostgreSQL."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

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


def test_upgrading_keeps_training_logs(database_url):
    """Revision 0005 moved log events from jobs to streams: a database written before it keeps every line."""
    engine = create_engine(database_url)
    migrate(engine, "0004")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO training_jobs (name, arn, request, status, secondary_status, creation_time, "
                "last_modified_time, stop_requested, log_stream) VALUES "
                "('old', 'arn', '{}', 'Completed', 'Completed', 10.5, 11.0, false, 'old/algo-1-10'), "
                "('quiet', 'arn', '{}', 'Failed', 'Failed', 12.0, 12.0, false, 'quiet/algo-1-12')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO log_events (job_name, timestamp, ingestion_time, message) VALUES "
                "('old', 1, 1, 'first'), ('old', 2, 2, 'second')"
            )
        )
    migrate(engine)
    with engine.connect() as conn:
        streams = conn.execute(text("SELECT id, log_group, name, creation_time FROM log_streams")).all()
        assert [(g, n, c) for _, g, n, c in streams] == [("/aws/sagemaker/TrainingJobs", "old/algo-1-10", 10500)]
        events = conn.execute(text("SELECT stream_id, message FROM log_events ORDER BY id")).all()
        assert events == [(streams[0][0], "first"), (streams[0][0], "second")]
    engine.dispose()
