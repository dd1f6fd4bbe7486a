"""CloudWatch datapoints of training jobs' metrics

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metric_data",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("metric_name", sa.String(255), nullable=False),
        sa.Column("dimension_name", sa.String(255), nullable=False),
        sa.Column("dimension_value", sa.String(1024), nullable=False),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
    )
    op.create_index(
        "ix_metric_data_series", "metric_data", ["namespace", "metric_name", "dimension_value", "timestamp"]
    )


def downgrade() -> None:
    op.drop_table("metric_data")
