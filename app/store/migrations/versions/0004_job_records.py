"""Job records: every backup, restore and verify, kept in the console store for the activity page.

RQ forgets a job after 7 days; this table keeps at least the newest 500 records, and every
record of the last 30 days (app/jobs/history.py prunes the rest).

Revision ID: 0004
Revises: 0003 (set at the merge of main; written against 0001 while 0002 and 0003 were made in parallel)
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_records",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("database", sa.String(length=128), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("scheduled", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("enqueued_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("outcome", sa.String(length=500), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("enqueued_at", "environment", "kind", "status"):
        op.create_index(f"ix_job_records_{column}", "job_records", [column], unique=False)


def downgrade() -> None:
    op.drop_table("job_records")
