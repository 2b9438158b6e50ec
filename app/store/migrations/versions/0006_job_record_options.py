"""Job records keep the choices made with a request (verify only trusted backups, restore without
owners, create the missing roles), so a job acts on what was asked, not on arguments in Redis.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_records") as batch:
        batch.add_column(sa.Column("options", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_records") as batch:
        batch.drop_column("options")
