"""log streams of any group (endpoints' as well as training jobs'), events by stream

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TRAINING_GROUP = "/aws/sagemaker/TrainingJobs"


def upgrade() -> None:
    op.create_table(
        "log_streams",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("log_group", sa.String(512), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("creation_time", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("log_group", "name", name="uq_log_streams_group_name"),
    )
    # every job that logged keeps its stream and events
    op.execute(
        sa.text(
            "INSERT INTO log_streams (log_group, name, creation_time) "
            "SELECT :group, j.log_stream, CAST(j.creation_time * 1000 AS BIGINT) FROM training_jobs j "
            "WHERE EXISTS (SELECT 1 FROM log_events e WHERE e.job_name = j.name)"
        ).bindparams(group=TRAINING_GROUP)
    )
    with op.batch_alter_table("log_events") as batch:
        batch.add_column(sa.Column("stream_id", sa.Integer(), nullable=True))
    op.execute(
        sa.text(
            "UPDATE log_events SET stream_id = (SELECT s.id FROM log_streams s JOIN training_jobs j "
            "ON s.name = j.log_stream AND s.log_group = :group WHERE j.name = log_events.job_name)"
        ).bindparams(group=TRAINING_GROUP)
    )
    with op.batch_alter_table("log_events") as batch:
        batch.drop_index("ix_log_events_job_name")
        batch.drop_column("job_name")
        batch.alter_column("stream_id", existing_type=sa.Integer(), nullable=False)
        batch.create_foreign_key("fk_log_events_stream", "log_streams", ["stream_id"], ["id"], ondelete="CASCADE")
        batch.create_index("ix_log_events_stream", ["stream_id", "id"])


def downgrade() -> None:
    with op.batch_alter_table("log_events") as batch:
        batch.add_column(sa.Column("job_name", sa.String(63), nullable=True))
    op.execute(
        sa.text(
            "UPDATE log_events SET job_name = (SELECT j.name FROM training_jobs j JOIN log_streams s "
            "ON s.name = j.log_stream WHERE s.id = log_events.stream_id)"
        )
    )
    op.execute(sa.text("DELETE FROM log_events WHERE job_name IS NULL"))
    with op.batch_alter_table("log_events") as batch:
        batch.drop_index("ix_log_events_stream")
        batch.drop_constraint("fk_log_events_stream", type_="foreignkey")
        batch.drop_column("stream_id")
        batch.alter_column("job_name", existing_type=sa.String(63), nullable=False)
        batch.create_foreign_key("fk_log_events_job", "training_jobs", ["job_name"], ["name"], ondelete="CASCADE")
        batch.create_index("ix_log_events_job_name", ["job_name"])
    op.drop_table("log_streams")
