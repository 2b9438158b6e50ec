"""The console store as the releases before migrations made it: users, tokens, sign-ins, settings, audit.

Those releases created tables with `create_all` and kept no revision, so this first migration
adopts such a store in place: it creates only the tables that are missing and adds
`users.session_epoch` where an older release made `users` without it. Every user, token,
setting and audit row is kept. On a new store it simply creates everything.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _create_table(existing: set[str], name: str, *columns, indexes: tuple = ()) -> None:
    if name in existing:
        return
    op.create_table(name, *columns)
    for index_name, index_columns, unique in indexes:
        op.create_index(index_name, name, index_columns, unique=unique)


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    existing = set(inspector.get_table_names())

    _create_table(
        existing,
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        indexes=tuple((f"ix_audit_events_{c}", [c], False) for c in ("action", "at", "job_id", "outcome", "username")),
    )
    _create_table(
        existing,
        "console_settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    _create_table(
        existing,
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_login_at", sa.DateTime(), nullable=True),
        sa.Column("reset_token_hash", sa.String(length=64), nullable=True),
        sa.Column("reset_expires_at", sa.DateTime(), nullable=True),
        sa.Column("session_epoch", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id"),
        indexes=(("ix_users_reset_token_hash", ["reset_token_hash"], False), ("ix_users_username", ["username"], True)),
    )
    if "users" in existing and "session_epoch" not in {c["name"] for c in inspector.get_columns("users")}:
        with op.batch_alter_table("users") as batch_op:
            batch_op.add_column(sa.Column("session_epoch", sa.Integer(), server_default="0", nullable=False))
    _create_table(
        existing,
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        indexes=(("ix_api_tokens_token_hash", ["token_hash"], True), ("ix_api_tokens_user_id", ["user_id"], False)),
    )
    _create_table(
        existing,
        "login_sessions",
        sa.Column("sid_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("sid_hash"),
        indexes=(("ix_login_sessions_user_id", ["user_id"], False),),
    )


def downgrade() -> None:
    for table in ("login_sessions", "api_tokens", "users", "console_settings", "audit_events"):
        op.drop_table(table)
