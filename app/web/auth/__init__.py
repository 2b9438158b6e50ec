"""Who is asking: session sign-in for pages, bearer tokens for the API, and the role check.

On a target's pages the role is the user's role on that target (a per-target role overrides the
global one; "none" makes the target and every route for it a 404), capped by the API token's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, abort, current_app, g, jsonify, redirect, request, session, url_for
from flask_login import current_user, login_user, logout_user
from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload

from app import operations, second_factor, services
from app.extensions import db, login_manager
from app.models import ApiToken, LoginSession, User, utcnow
from app.operations import Actor
from app.ratelimit import FailureLimit
from app.settings import ROLES, Target

F = TypeVar("F", bound=Callable[..., Any])


def init_app(app: Flask) -> None:
    login_manager.user_loader(_load_user)
    login_manager.request_loader(load_user_from_token)
    login_manager.unauthorized_handler(_unauthorized)
    app.before_request(_enrol_first)


# What a signed-in user who must enrol in two-factor codes may still reach (REQUIRE_2FA).
_BEFORE_ENROLMENT = {"people.second_factor_page", "auth.logout", "static"}


def _enrol_first():
    """REQUIRE_2FA: an account that must have two-factor codes does nothing else until it enrols."""
    if request.endpoint in _BEFORE_ENROLMENT or "Authorization" in request.headers:
        return None  # API tokens are judged by the token alone
    if not current_user.is_authenticated or not second_factor.must_enrol(current_user, services.settings()):
        return None
    if request.path.startswith("/api/"):
        return jsonify(error="set up two-factor codes on /account/two-factor first"), 403
    return redirect(url_for("people.second_factor_page"))


# The session cookie carries this sign-in's random id; the console store says whether it has ended.
SESSION_ID_KEY = "login_sid"
TOKEN_USE_RECORDED_EVERY = timedelta(minutes=1)
# A token with its user and their per-target roles, in one query. Built once: building the
# statement and its cache key on every request was half of a token check's cost (bench/README.md).
TOKEN_BY_DIGEST = (
    select(ApiToken)
    .options(joinedload(ApiToken.user).joinedload(User.target_roles))
    .where(ApiToken.token_hash == bindparam("digest"))
)


def _load_user(user_id: str) -> User | None:
    """The session's user, unless it is disabled, its epoch is stale, or this sign-in has ended."""
    uid, _, epoch = user_id.partition(":")
    user = db.session.get(User, int(uid)) if uid.isdigit() and epoch.isdigit() else None
    if user is None or not user.active or user.session_epoch != int(epoch):
        return None
    record = _this_sign_in()
    if record is None or not record.in_force or record.user_id != user.id:
        return None
    return user


def _this_sign_in() -> LoginSession | None:
    sid = session.get(SESSION_ID_KEY)
    return LoginSession.find(sid) if isinstance(sid, str) else None


def start_session(user: User, expires_at: datetime | None = None) -> None:
    """Sign `user` in with a fresh session (no fixation) and a new server-side sign-in record.

    `expires_at` ends it on the server at that time (single sign-on: OIDC_SESSION_HOURS).
    """
    session.clear()
    LoginSession.forget_older_than(utcnow() - current_app.permanent_session_lifetime)
    record, sid = LoginSession.start(user, client_address(), expires_at)
    db.session.add(record)
    login_user(user)
    session[SESSION_ID_KEY] = sid
    db.session.commit()


def end_session() -> None:
    """Sign out here: this sign-in ends on the server too, so a copy of its cookie stops working."""
    record = _this_sign_in()
    if record is not None and record.ended_at is None:
        record.ended_at = utcnow()
        db.session.commit()
    logout_user()
    session.clear()


def load_user_from_token(req) -> User | None:
    header = req.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    # Looked up by digest: comparing digests leaks nothing about the token itself.
    record = db.session.execute(TOKEN_BY_DIGEST, {"digest": ApiToken.hash(token.strip())}).unique().scalar_one_or_none()
    if record is None or not record.usable:
        return None
    now = utcnow()
    # "Last used" to the minute: a script polling a job every 50 ms would otherwise write to the
    # console store on every request (that write was most of a poll's cost, bench/README.md).
    if record.last_used_at is None or now - record.last_used_at >= TOKEN_USE_RECORDED_EVERY:
        record.last_used_at = now
        db.session.commit()
    g.token_role = record.role
    return record.user


def _unauthorized():
    if request.path.startswith("/api/"):
        return jsonify(error="sign-in required: send Authorization: Bearer <token>"), 401
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def role_required(role: str) -> Callable[[F], F]:
    """Every view and API route names the least role it needs (viewer < operator < admin)."""
    assert role in ROLES

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if target_hidden():
                abort(404, "no such target")
            if not has_role(role):
                abort(403, f"this needs the {role} role; you are signed in as {own_role()}")
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


def own_role(target: str | None = None) -> str:
    """The signed-in user's role on `target` (default: the one this request is about), or their global role."""
    target = target or services.scoped_target()
    return current_user.role_on(target) if target else current_user.role


def target_hidden() -> bool:
    """The URL names a target that does not exist, or one the user may not see: both answer 404."""
    if g.get("requested_target") and services.scoped_target() is None:
        return True
    return own_role() == "none"


def visible_targets() -> list[Target]:
    """The targets the signed-in user may see, in the order of the configuration."""
    return [t for t in services.console_settings().targets if not hidden(t.name)]


def hidden(target: str | None) -> bool:
    """True for a target the signed-in user may not see (per-target role "none")."""
    return target is not None and current_user.is_authenticated and current_user.role_on(target) == "none"


def has_role(role: str) -> bool:
    """The signed-in user's role here (see `acting_role`) is at least `role`."""
    if not current_user.is_authenticated:
        return False
    acting = acting_role()
    return acting != "none" and ROLES.index(acting) >= ROLES.index(role)


def acting_role() -> str:
    """The role the signed-in user acts with here: their own on this target, capped by the API token's."""
    role, token_role = own_role(), g.get("token_role")
    if role != "none" and token_role is not None and ROLES.index(token_role) < ROLES.index(role):
        return token_role
    return role


def current_actor() -> Actor:
    """Who is asking, for the application layer (which never reads the request itself)."""
    return Actor(current_user.username, acting_role(), client_address())


def failure_limit(name: str, allowed: int, window_seconds: int) -> FailureLimit:
    """A failure counter in this console's Redis namespace; the caller names its parts (user, address, ...)."""
    return operations.failure_limit(operations.collaborators(), name, allowed, window_seconds)


def client_address() -> str:
    return request.remote_addr or "unknown"
