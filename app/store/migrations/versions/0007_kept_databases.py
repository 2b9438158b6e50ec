"""Kept databases: those restores set aside and keep for RESTORE_KEEP_PREVIOUS, for "Swap back".

They were listed in Redis, where whoever can write to Redis could point a swap back at another
database or have a kept one dropped early; the console store is trusted.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kept_databases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(length=40), nullable=False),
        sa.Column("database", sa.String(length=128), nullable=False),
        sa.Column("safety_backup", sa.String(length=255), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column("kept_until", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("database", name="uq_kept_databases_database"),
    )


def downgrade() -> None:
    op.drop_table("kept_databases")
