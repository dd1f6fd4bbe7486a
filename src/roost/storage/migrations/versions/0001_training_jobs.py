"""training jobs, status transitions and log events

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "training_jobs",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("arn", sa.String(256), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("secondary_status", sa.String(32), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("creation_time", sa.Float(), nullable=False),
        sa.Column("last_modified_time", sa.Float(), nullable=False),
        sa.Column("training_start_time", sa.Float(), nullable=True),
        sa.Column("training_end_time", sa.Float(), nullable=True),
        sa.Column("model_artifacts", sa.Text(), nullable=True),
        sa.Column("final_metrics", sa.JSON(), nullable=True),
        sa.Column("stop_requested", sa.Boolean(), nullable=False),
        sa.Column("log_stream", sa.String(256), nullable=False),
    )
    op.create_index("ix_training_jobs_status", "training_jobs", ["status"])
    op.create_index("ix_training_jobs_creation_time", "training_jobs", ["creation_time"])
    op.create_table(
        "status_transitions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("job_name", sa.String(63), sa.ForeignKey("training_jobs.name", ondelete="CASCADE"), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("start_time", sa.Float(), nullable=False),
        sa.Column("end_time", sa.Float(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
    )
    op.create_index("ix_status_transitions_job_name", "status_transitions", ["job_name"])
    op.create_table(
        "log_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("job_name", sa.String(63), sa.ForeignKey("training_jobs.name", ondelete="CASCADE"), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("ingestion_time", sa.BigInteger(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
    )
    op.create_index("ix_log_events_job_name", "log_events", ["job_name"])


def downgrade() -> None:
    op.drop_table("log_events")
    op.drop_table("status_transitions")
    op.drop_table("training_jobs")
