"""The console's own store: people, API tokens, sign-in sessions, two-factor codes, the audit log, job
records and the databases restores keep for a swap back.

It lives in `CONSOLE_DATABASE_URL` (SQLite by default), never in the target database, so a
restore can never erase who did it. Only hashes of passwords, tokens and recovery codes are kept;
a two-factor secret is kept encrypted (app/accounts/second_factor.py).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime

from flask_login import UserMixin
from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from app.config import ROLES
from app.extensions import db


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="viewer")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)
    reset_token_hash: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    reset_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    # Part of every session's user id (see get_id): bumping it ends all of this user's sessions.
    session_epoch: Mapped[int] = mapped_column(default=0, server_default="0")
    # Single sign-on: who the provider says this is (its issuer and `sub`); None for a local account.
    sso_issuer: Mapped[str | None] = mapped_column(String(255), default=None)
    sso_subject: Mapped[str | None] = mapped_column(String(255), default=None)
    # Two-factor codes: the TOTP secret, encrypted; enabled once the user confirmed a code.
    totp_secret: Mapped[str | None] = mapped_column(Text, default=None)
    totp_enabled_at: Mapped[datetime | None] = mapped_column(default=None)
    totp_last_step: Mapped[int | None] = mapped_column(default=None)  # a code is accepted once
    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user", cascade="all, delete-orphan")
    target_roles: Mapped[list[TargetRole]] = relationship(back_populates="user", cascade="all, delete-orphan")
    recovery_codes: Mapped[list[RecoveryCode]] = relationship(cascade="all, delete-orphan")

    __table_args__ = (Index("ix_users_sso", "sso_issuer", "sso_subject", unique=True),)

    @property
    def is_active(self) -> bool:  # flask-login refuses inactive users
        return self.active

    def get_id(self) -> str:
        """What the session stores: Flask-Login's "alternative token", so a stale epoch no longer loads."""
        return f"{self.id}:{self.session_epoch}"

    @property
    def is_sso(self) -> bool:
        """Signed in by the identity provider only: no local password."""
        return self.sso_subject is not None

    @property
    def has_second_factor(self) -> bool:
        return self.totp_enabled_at is not None

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return bool(self.password_hash) and check_password_hash(self.password_hash, password)

    def has_role(self, role: str) -> bool:
        """Roles are ordered: an admin may do all an operator may, and so on."""
        return ROLES.index(self.role) >= ROLES.index(role)

    def role_on(self, target: str) -> str:
        """The role on one target: its per-target role ("none" hides it), else the global role."""
        return next((r.role for r in self.target_roles if r.target == target), self.role)


class TargetRole(db.Model):
    """A user's role on one target, overriding their global role there ("none": the target is hidden)."""

    __tablename__ = "target_roles"
    __table_args__ = (UniqueConstraint("user_id", "target", name="uq_target_roles_user_id_target"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    target: Mapped[str] = mapped_column(String(40))
    role: Mapped[str] = mapped_column(String(16))
    user: Mapped[User] = relationship(back_populates="target_roles")


class ApiToken(db.Model):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(80), default="")
    role: Mapped[str | None] = mapped_column(String(16), default=None)  # None: the owner's role
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    user: Mapped[User] = relationship(back_populates="tokens")

    PREFIX = "pgc_"

    @staticmethod
    def hash(token: str) -> str:
        # Tokens are 256 random bits, so a plain digest is enough (no salt or stretching needed).
        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def issue(
        cls, user: User, name: str = "", expires_at: datetime | None = None, role: str | None = None
    ) -> tuple[ApiToken, str]:
        """A new token for `user`; the plain token is returned once and never stored."""
        plain = cls.PREFIX + secrets.token_urlsafe(32)
        return cls(user=user, token_hash=cls.hash(plain), name=name, expires_at=expires_at, role=role), plain

    @property
    def usable(self) -> bool:
        if self.revoked_at is not None or not self.user.active:
            return False
        return self.expires_at is None or self.expires_at > utcnow()


class LoginSession(db.Model):
    """One sign-in from a browser: signing out ends it here, so a copied cookie stops working too."""

    __tablename__ = "login_sessions"

    sid_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # the cookie holds the sid itself
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    address: Mapped[str | None] = mapped_column(String(64))
    # A single sign-on session ends here (OIDC_SESSION_HOURS) and is renewed only through the provider.
    expires_at: Mapped[datetime | None] = mapped_column(default=None)

    @classmethod
    def start(cls, user: User, address: str | None, expires_at: datetime | None = None) -> tuple[LoginSession, str]:
        """A new session of `user`; the plain sid goes into the (signed) session cookie, only its digest here."""
        sid = secrets.token_urlsafe(32)
        return cls(sid_hash=ApiToken.hash(sid), user_id=user.id, address=address, expires_at=expires_at), sid

    @property
    def in_force(self) -> bool:
        return self.ended_at is None and (self.expires_at is None or self.expires_at > utcnow())

    @classmethod
    def find(cls, sid: str) -> LoginSession | None:
        return db.session.get(cls, ApiToken.hash(sid))

    @classmethod
    def forget_older_than(cls, started_before: datetime) -> None:
        """Drop sign-ins whose cookies can no longer be valid (Flask refuses a cookie past its lifetime)."""
        db.session.execute(db.delete(cls).where(cls.started_at < started_before))


class RecoveryCode(db.Model):
    """One of a user's one-time recovery codes, by digest; used_at is set when it is spent."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class AuditEvent(db.Model):
    """Append-only from the application's side: there is no route that edits or deletes one."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    username: Mapped[str | None] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(40), index=True)
    target: Mapped[str | None] = mapped_column(String(255))  # what was acted on: a file, a user, ...
    outcome: Mapped[str] = mapped_column(String(20), index=True)
    detail: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[str | None] = mapped_column(String(64), index=True)
    address: Mapped[str | None] = mapped_column(String(64))
    target_name: Mapped[str | None] = mapped_column(String(40), index=True)  # the database target it concerns


class ConsoleSetting(db.Model):
    """Settings an admin changes from the browser (e.g. the backup schedule); env vars are defaults."""

    __tablename__ = "console_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(64))


class JobRun(db.Model):
    """One backup, restore or verify, from request to outcome, kept after RQ has forgotten it.

    Written only by the jobs layer (`app.jobs.history`); the activity page and the home page's
    failure banner read it. Holds what a person needs to know, never a secret.
    """

    __tablename__ = "job_records"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the RQ job id
    kind: Mapped[str] = mapped_column(String(16), index=True)
    environment: Mapped[str] = mapped_column(String(64), index=True)
    database: Mapped[str] = mapped_column(String(128))
    filename: Mapped[str | None] = mapped_column(String(255))
    requested_by: Mapped[str] = mapped_column(String(64))
    scheduled: Mapped[bool] = mapped_column(default=False)
    # queued, started, finished, failed, stopped
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    enqueued_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    outcome: Mapped[str | None] = mapped_column(String(500), default=None)  # what it did, in words
    error: Mapped[str | None] = mapped_column(Text, default=None)  # why it failed, in words
    target: Mapped[str | None] = mapped_column(String(40), default=None, index=True)  # None: the only target
    # The sha256 of the archive an admin confirmed (restore) or asked to verify: the job refuses any other.
    archive_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    # The choices made with the request, as JSON ({"without_owners": true}, ...): read by the job, never
    # taken from its arguments in Redis, which anyone who can write to Redis can change.
    options: Mapped[str | None] = mapped_column(Text, default=None)

    def chosen(self, name: str, default: bool = False) -> bool:
        """One choice made with the request (`default` when it was not made)."""
        value = json.loads(self.options or "{}").get(name, default)
        return value if isinstance(value, bool) else default

    @property
    def running(self) -> bool:
        return self.status in ("queued", "started")

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


class KeptDatabaseRecord(db.Model):
    """A database a restore set aside and keeps for RESTORE_KEEP_PREVIOUS, for "Swap back" (app/jobs/kept_databases.py).

    Here, not in Redis: whoever can write to Redis must not choose what a swap back puts back, nor have a
    kept database dropped early. `claimed_at` is set once, by the one swap back or sweep that acts on it.
    """

    __tablename__ = "kept_databases"
    __table_args__ = (UniqueConstraint("database", name="uq_kept_databases_database"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    target: Mapped[str] = mapped_column(String(40))  # the target's name; "": the only target
    database: Mapped[str] = mapped_column(String(128))  # the set-aside database, closed to connections
    safety_backup: Mapped[str] = mapped_column(String(255))  # the checked backup of the same data
    job_id: Mapped[str | None] = mapped_column(String(64), default=None)  # the restore that set it aside
    kept_until: Mapped[datetime] = mapped_column()  # UTC; the sweep has it dropped after
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(default=None)  # by the one swap back or sweep acting on it
