"""hyperparameter tuning jobs and their trials; the tuning job of each training job

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tuning_jobs",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("arn", sa.String(256), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("creation_time", sa.Float(), nullable=False),
        sa.Column("last_modified_time", sa.Float(), nullable=False),
        sa.Column("end_time", sa.Float(), nullable=True),
        sa.Column("stop_requested", sa.Boolean(), nullable=False),
        sa.Column("finishing", sa.Text(), nullable=True),
        sa.Column("convergence_time", sa.Float(), nullable=True),
    )
    op.create_index("ix_tuning_jobs_status", "tuning_jobs", ["status"])
    op.create_index("ix_tuning_jobs_creation_time", "tuning_jobs", ["creation_time"])
    op.create_table(
        "tuning_trials",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("tuning_job", sa.String(32), sa.ForeignKey("tuning_jobs.name", ondelete="CASCADE"), nullable=False),
        sa.Column("training_job", sa.String(63), nullable=False, unique=True),
        sa.Column("trial_number", sa.Integer(), nullable=False),
        sa.Column("tuned", sa.JSON(), nullable=False),
        sa.Column("objective", sa.Float(), nullable=True),
        sa.Column("objective_status", sa.String(16), nullable=False),
        sa.Column("stopped_by", sa.String(16), nullable=True),
        sa.Column("reported", sa.Integer(), nullable=False),
        sa.Column("settled", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_tuning_trials_tuning_job", "tuning_trials", ["tuning_job"])
    with op.batch_alter_table("training_jobs") as batch:
        batch.add_column(sa.Column("tuning_job_arn", sa.String(256), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("training_jobs") as batch:
        batch.drop_column("tuning_job_arn")
    op.drop_table("tuning_trials")
    op.drop_table("tuning_jobs")
