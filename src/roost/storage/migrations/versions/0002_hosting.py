"""models, endpoint configs, endpoints and transform jobs

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _named(table: str, *columns: sa.Column) -> None:
    op.create_table(
        table,
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("arn", sa.String(256), nullable=False),
        *columns,
    )


def upgrade() -> None:
    _named(
        "models",
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("creation_time", sa.Float(), nullable=False),
    )
    _named(
        "endpoint_configs",
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("creation_time", sa.Float(), nullable=False),
    )
    _named(
        "endpoints",
        sa.Column("config_name", sa.String(63), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("creation_time", sa.Float(), nullable=False),
        sa.Column("last_modified_time", sa.Float(), nullable=False),
    )
    _named(
        "transform_jobs",
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("creation_time", sa.Float(), nullable=False),
        sa.Column("start_time", sa.Float(), nullable=True),
        sa.Column("end_time", sa.Float(), nullable=True),
    )


def downgrade() -> None:
    for table in ("transform_jobs", "endpoints", "endpoint_configs", "models"):
        op.drop_table(table)
