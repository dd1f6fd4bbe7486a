"""the embedded S3 store: buckets, objects, multipart uploads and their parts

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

KEY = sa.String(1024).with_variant(sa.String(1024, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "s3_buckets",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("creation_time", sa.Float(), nullable=False),
    )
    op.create_table(
        "s3_objects",
        sa.Column("bucket", sa.String(63), sa.ForeignKey("s3_buckets.name", ondelete="CASCADE"), primary_key=True),
        sa.Column("key", KEY, primary_key=True),
        sa.Column("blob", sa.String(64), nullable=False, unique=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("etag", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(256), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("checksums", sa.JSON(), nullable=False),
        sa.Column("checksum_type", sa.String(16), nullable=True),
        sa.Column("last_modified", sa.Float(), nullable=False),
    )
    op.create_table(
        "s3_uploads",
        sa.Column("upload_id", sa.String(64), primary_key=True),
        sa.Column("bucket", sa.String(63), sa.ForeignKey("s3_buckets.name", ondelete="CASCADE"), nullable=False),
        sa.Column("key", KEY, nullable=False),
        sa.Column("initiated", sa.Float(), nullable=False),
        sa.Column("content_type", sa.String(256), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("checksum_algorithm", sa.String(16), nullable=True),
    )
    op.create_index("ix_s3_uploads_bucket", "s3_uploads", ["bucket"])
    op.create_table(
        "s3_parts",
        sa.Column(
            "upload_id", sa.String(64), sa.ForeignKey("s3_uploads.upload_id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("number", sa.Integer(), primary_key=True),
        sa.Column("blob", sa.String(64), nullable=False, unique=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("etag", sa.String(64), nullable=False),
        sa.Column("checksums", sa.JSON(), nullable=False),
        sa.Column("last_modified", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("s3_parts")
    op.drop_table("s3_uploads")
    op.drop_table("s3_objects")
    op.drop_table("s3_buckets")
