"""Job records carry their target and the archive a restore or verify was confirmed for.

`target` lets every page that shows jobs filter them by what the caller may see (a target hidden
by role `none` hides its jobs too). `archive_sha256` is the sha256 of the file an admin
confirmed; the job refuses any other archive. A job that finds no queued record of its own was
not requested through the console and does nothing.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_records") as batch:
        batch.add_column(sa.Column("target", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("archive_sha256", sa.String(length=64), nullable=True))
        batch.create_index("ix_job_records_target", ["target"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("job_records") as batch:
        batch.drop_index("ix_job_records_target")
        batch.drop_column("archive_sha256")
        batch.drop_column("target")
