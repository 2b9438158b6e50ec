"""Several targets: per-target roles, and the target each audit event concerns.

`target_roles` holds a user's role on one target, overriding the global role there ("none"
hides the target). `audit_events.target_name` records which target an event was about, so the
audit log can be filtered by it; events written before this revision have none.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "target_roles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(length=40), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "target", name="uq_target_roles_user_id_target"),
    )
    op.create_index("ix_target_roles_user_id", "target_roles", ["user_id"], unique=False)
    with op.batch_alter_table("audit_events") as batch_op:
        batch_op.add_column(sa.Column("target_name", sa.String(length=40), nullable=True))
        batch_op.create_index("ix_audit_events_target_name", ["target_name"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch_op:
        batch_op.drop_index("ix_audit_events_target_name")
        batch_op.drop_column("target_name")
    op.drop_index("ix_target_roles_user_id", table_name="target_roles")
    op.drop_table("target_roles")
