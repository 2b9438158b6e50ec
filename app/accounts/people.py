"""Managing the people who use the console: one place for the rules the CLI and pages share.

Every change is audited. The last active admin can be neither disabled nor demoted, nor can the
last active local admin (the password form is the way in when the identity provider is down), so
the console can never lock itself out. A new password, a new role, disabling or enabling ends every
session the user has open (`end_sessions`). A new password and "Sign out everywhere" also revoke the
user's API tokens (`revoke_tokens`): whoever took a session or the old password may have made one.
A disabled user's tokens stop working while they are disabled.
"""

from __future__ import annotations

import secrets
import unicodedata
from datetime import datetime, timedelta

from app.config import ROLES, TARGET_ROLES
from app.extensions import db
from app.store import audit
from app.store.models import ApiToken, LoginSession, TargetRole, User, utcnow

GLOBAL = "global"  # as a per-target role: none of its own, the user's global role applies

MIN_PASSWORD_LENGTH = 10
SET_PASSWORD_LINK_HOURS = 24


class PeopleError(Exception):
    """A change was refused; the message says why."""


def password_problem(password: str) -> str | None:
    if not password.strip():
        return "the password cannot be only spaces"
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password must have at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > 256:
        return "the password must have at most 256 characters"
    return None


def username_problem(username: str) -> str | None:
    if not username or len(username) > 64 or any(c.isspace() or not c.isprintable() for c in username):
        return "the username must be 1 to 64 printable characters without spaces"
    holder = lookalike_of(username)
    if holder is not None:  # also "Ada" next to "ada": two names that people cannot tell apart
        return f"a user named {holder.username!r} already exists"
    return None


def find_user(username: str) -> User | None:
    return db.session.execute(db.select(User).where(User.username == username)).scalar_one_or_none()


def username_key(username: str) -> str:
    """What two usernames must not share: compatibility forms folded (NFKC) and case ignored."""
    return unicodedata.normalize("NFKC", username).casefold()


def lookalike_of(username: str, besides: User | None = None) -> User | None:
    """Another user whose name differs from `username` only in case or Unicode form ("RTADMIN", "ｒｔadmin")."""
    key = username_key(username)
    everyone = db.session.execute(db.select(User)).scalars()  # a console has tens of people, not millions
    return next((u for u in everyone if u is not besides and username_key(u.username) == key), None)


def create_user(username: str, role: str, password: str | None, created_by: str) -> User:
    """A new user; with no password, it gets one it cannot know until a set-password link is used."""
    problem = username_problem(username) or (password is not None and password_problem(password))
    if problem:
        raise PeopleError(problem)
    if role not in ROLES:
        raise PeopleError(f"unknown role {role!r}")
    user = User(username=username, role=role)
    user.set_password(password if password is not None else secrets.token_urlsafe(32))
    db.session.add(user)
    db.session.commit()
    audit.record("user.create", "ok", username=created_by, target=username, detail=f"role {role}")
    return user


def end_sessions(user: User) -> int:
    """End all of `user`'s browser sessions (the caller commits); returns how many were open.

    The epoch bump alone is enough (the session loader compares it); ending the sign-in records
    as well keeps them truthful about which sessions still work.
    """
    user.session_epoch += 1
    still_open = db.select(LoginSession).where(LoginSession.user_id == user.id, LoginSession.ended_at.is_(None))
    open_sessions = db.session.execute(still_open).scalars().all()
    for record in open_sessions:
        record.ended_at = utcnow()
    return len(open_sessions)


def revoke_tokens(user: User) -> int:
    """Revoke every API token of `user` that still works (the caller commits); returns how many."""
    now = utcnow()
    live = [t for t in user.tokens if t.revoked_at is None and (t.expires_at is None or t.expires_at > now)]
    for token in live:
        token.revoked_at = now
    return len(live)


def sign_out_everywhere(user: User, address: str | None) -> None:
    """The user's own "Sign out everywhere": every browser, this one included, and every API token
    (a stolen session could have made one)."""
    ended, revoked = end_sessions(user), revoke_tokens(user)
    db.session.commit()
    audit.record("logout-everywhere", "ok", username=user.username, target=user.username,
                 detail=f"{ended} open session(s) ended, {revoked} API token(s) revoked", address=address)  # fmt: skip


def lockout(user: User) -> str | None:
    """Why `user` may not be disabled or lose the admin role (the last active admin), or None."""
    return _lockout(user)


def _lockout(user: User) -> str | None:
    """Why `user` may not stop being an active admin: the last one, or the last local one."""
    if user.role != "admin" or not user.active:
        return None
    others = db.select(db.func.count()).select_from(User).where(User.role == "admin", User.active, User.id != user.id)
    if not db.session.execute(others).scalar_one():
        return f"{user.username} is the last active admin"
    if not user.is_sso and not db.session.execute(others.where(User.sso_subject.is_(None))).scalar_one():
        return f"{user.username} is the last active local admin (the way in when single sign-on is down)"
    return None


def change_role(user: User, role: str, changed_by: str) -> None:
    if role not in ROLES:
        raise PeopleError(f"unknown role {role!r}")
    lockout = _lockout(user) if role != "admin" else None
    if lockout:
        raise PeopleError(f"{lockout}; make someone else admin first")
    old, user.role = user.role, role
    if old != role:
        end_sessions(user)  # pages already open were shown for the old role
    db.session.commit()
    audit.record("user.role", "ok", username=changed_by, target=user.username, detail=f"{old} -> {role}")


def grant_target_role(user: User, target: str, role: str, changed_by: str, known_targets: list[str]) -> None:
    """Set `user`'s role on one target ("none" hides it; GLOBAL removes the override)."""
    if target not in known_targets:
        raise PeopleError(f"unknown target {target!r} (targets: {', '.join(known_targets)})")
    if role not in (*TARGET_ROLES, GLOBAL):
        raise PeopleError(f"unknown role {role!r}")
    old = user.role_on(target)
    existing = next((r for r in user.target_roles if r.target == target), None)
    if role == GLOBAL:
        if existing is not None:
            user.target_roles.remove(existing)
    elif existing is not None:
        existing.role = role
    else:
        user.target_roles.append(TargetRole(target=target, role=role))
    new = user.role_on(target)
    if old != new:
        end_sessions(user)  # pages already open were shown for the old role
    db.session.commit()
    audit.record("user.target-role", "ok", username=changed_by, target=user.username, target_name=target,
                 detail=f"{old} -> {new}" + (" (the global role)" if role == GLOBAL else ""))  # fmt: skip


def set_active(user: User, active: bool, changed_by: str) -> None:
    """Disabling takes effect at once: the session loader and token check both read `active`."""
    lockout = None if active else _lockout(user)
    if lockout:
        raise PeopleError(f"{lockout} and cannot be disabled")
    user.active = active
    end_sessions(user)  # on enable too: nothing from before a disable comes back to life
    db.session.commit()
    audit.record("user.enable" if active else "user.disable", "ok", username=changed_by, target=user.username)


def issue_set_password_link(user: User, issued_by: str) -> str:
    """A one-time secret for /set-password/<secret>; only its digest is stored."""
    if user.is_sso:
        raise PeopleError(f"{user.username} signs in with single sign-on and has no password here")
    secret = secrets.token_urlsafe(32)
    user.reset_token_hash = ApiToken.hash(secret)
    user.reset_expires_at = utcnow() + timedelta(hours=SET_PASSWORD_LINK_HOURS)
    db.session.commit()
    audit.record("user.reset-link", "ok", username=issued_by, target=user.username)
    return secret


def user_for_set_password(secret: str) -> User | None:
    user = db.session.execute(
        db.select(User).where(User.reset_token_hash == ApiToken.hash(secret))
    ).scalar_one_or_none()
    if user is None or user.reset_expires_at is None or user.reset_expires_at < utcnow() or not user.active:
        return None
    return user


def set_password(user: User, password: str, changed_by: str) -> None:
    problem = password_problem(password) or (user.is_sso and "single sign-on accounts have no password here")
    if problem:
        raise PeopleError(problem)
    user.set_password(password)
    user.reset_token_hash = None
    user.reset_expires_at = None
    end_sessions(user)  # whoever knew the old password may be signed in somewhere
    revoked = revoke_tokens(user)  # ... or have made a token with it
    db.session.commit()
    audit.record("user.password", "ok", username=changed_by, target=user.username,
                 detail=f"{revoked} API token(s) revoked" if revoked else None)  # fmt: skip


def create_token(user: User, name: str, role: str | None, expires_at: datetime | None, created_by: str,
                 cap: str | None = None) -> str:  # fmt: skip
    """A new API token, returned once. Its role can be lower than `cap` (default: its owner's role), never
    higher: a session or token acting as less than its owner makes tokens of no more than that."""
    if (cap or user.role) not in ROLES:
        raise PeopleError("this session may not make tokens")
    cap = min(cap or user.role, user.role, key=ROLES.index)
    if role is None and cap != user.role:
        role = cap
    if role is not None and ROLES.index(role) > ROLES.index(cap):
        raise PeopleError(f"a token cannot have a higher role than {cap}")
    token, plain = ApiToken.issue(user, name=name, expires_at=expires_at, role=role)
    db.session.add(token)
    db.session.commit()
    detail = f"role {role or user.role}" + (f", expires {expires_at:%Y-%m-%d}" if expires_at else "")
    audit.record("token.create", "ok", username=created_by, target=user.username, detail=f"{name!r}, {detail}")
    return plain


def revoke_token(token: ApiToken, revoked_by: str) -> None:
    token.revoked_at = utcnow()
    db.session.commit()
    audit.record("token.revoke", "ok", username=revoked_by, target=token.user.username, detail=repr(token.name))
