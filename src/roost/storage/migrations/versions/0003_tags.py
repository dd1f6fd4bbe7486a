"""tags of every resource

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tags",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("resource_arn", sa.String(256), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("value", sa.String(256), nullable=False),
        sa.UniqueConstraint("resource_arn", "key", name="uq_tags_resource_key"),
    )
    op.create_index("ix_tags_resource_arn", "tags", ["resource_arn"])


def downgrade() -> None:
    op.drop_table("tags")
