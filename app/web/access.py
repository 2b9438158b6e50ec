"""Who is asking: session sign-in for pages, bearer tokens for the API, and the role check.

On a target's pages the role is the user's role on that target (a per-target role overrides the
global one; "none" makes the target and every route for it a 404), capped by the API token's.

A browser session ends SESSION_IDLE_MINUTES after its last request and SESSION_MAX_HOURS after
sign-in (a single sign-on one at OIDC_SESSION_HOURS); a single sign-on user's tokens work only up to
OIDC_SESSION_HOURS after their last sign-in, and never above the role the provider gave then.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, abort, current_app, g, jsonify, redirect, request, session, url_for
from flask_login import current_user, login_user, logout_user
from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload

from app import operations, services
from app.accounts import second_factor
from app.adapters.ratelimit import FailureLimit
from app.config import ROLES, Target
from app.extensions import db, login_manager
from app.operations import Actor
from app.store.models import ApiToken, LoginSession, User, utcnow

F = TypeVar("F", bound=Callable[..., Any])


def init_app(app: Flask) -> None:
    login_manager.user_loader(_load_user)
    login_manager.request_loader(load_user_from_token)
    login_manager.unauthorized_handler(_unauthorized)
    # First of all hooks: no other may see the user of a session that is not this browser's.
    app.before_request_funcs.setdefault(None, []).insert(0, _same_browser)
    settings = app.config["SETTINGS"]
    # How long Flask accepts a session cookie (and keeps sign-in records): the longest a session can last.
    longest = max(settings.session_max_hours, settings.oidc.session_hours if settings.oidc else 0)
    app.permanent_session_lifetime = timedelta(hours=longest)
    app.before_request(_enrol_first)


def _browser() -> str:
    """The browser as session protection knows it: its address (the peer's, or ProxyFix's answer for
    exactly TRUSTED_PROXIES hops) and its User-Agent. Not a client-sent X-Forwarded-For, so a stolen
    cookie cannot claim its victim's address."""
    agent = request.headers.get("User-Agent", "")
    return hashlib.sha512(f"{request.remote_addr}|{agent}".encode()).hexdigest()


def _same_browser() -> None:
    """Strong session protection: a signed-in session used from another address or browser is dropped."""
    if session.get(SESSION_ID_KEY) is not None and session.get(BROWSER_KEY) != _browser():
        session.clear()


def _bearer_api_request() -> bool:
    """An API request that carries Authorization: a real token's user is its user, whatever the cookie says."""
    return request.blueprint == "api" and "Authorization" in request.headers


# What a signed-in user who must enrol in two-factor codes may still reach (REQUIRE_2FA).
_BEFORE_ENROLMENT = {"people.second_factor_page", "auth.logout", "static"}


def _enrol_first():
    """REQUIRE_2FA: an account that must have two-factor codes does nothing else until it enrols.

    Only a request that a real API token signed in is judged by the token alone: merely sending an
    Authorization header next to a session cookie changes nothing.
    """
    if request.endpoint in _BEFORE_ENROLMENT or not current_user.is_authenticated or signed_in_by_token():
        return None
    if not second_factor.must_enrol(current_user, services.settings()):
        return None
    if request.path.startswith("/api/"):
        return jsonify(error="set up two-factor codes on /account/two-factor first"), 403
    return redirect(url_for("people.second_factor_page"))


# The session cookie carries this sign-in's random id; the console store says whether it has ended.
SESSION_ID_KEY = "login_sid"
# Which browser the session was issued to (`_browser`).
BROWSER_KEY = "browser"
# When this browser last made a request (for SESSION_IDLE_MINUTES), written at most this often.
SEEN_KEY = "seen_at"
SEEN_RECORDED_EVERY_SECONDS = 30
# When this browser last proved who it is (password or code), for steps that need it recently.
PROVEN_KEY = "proven_at"
PROOF_LASTS_SECONDS = 5 * 60
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
    if _bearer_api_request() and load_user_from_token(request) is not None:
        return None  # a real token decides: Flask-Login asks `load_user_from_token` next
    uid, _, epoch = user_id.partition(":")
    user = db.session.get(User, int(uid)) if uid.isdigit() and epoch.isdigit() else None
    if user is None or not user.active or user.session_epoch != int(epoch):
        return None
    record = _this_sign_in()
    if record is None or not record.in_force or record.user_id != user.id:
        return None
    now, seen = time.time(), session.get(SEEN_KEY)
    if not isinstance(seen, (int, float)) or now - seen > services.settings().session_idle_minutes * 60:
        record.ended_at = utcnow()  # idle too long: this sign-in is over, on the server too
        db.session.commit()
        return None
    if now - seen >= SEEN_RECORDED_EVERY_SECONDS:
        session[SEEN_KEY] = now
    return user


def _this_sign_in() -> LoginSession | None:
    sid = session.get(SESSION_ID_KEY)
    return LoginSession.find(sid) if isinstance(sid, str) else None


def start_session(user: User, expires_at: datetime | None = None) -> None:
    """Sign `user` in with a fresh session (no fixation) and a new server-side sign-in record.

    `expires_at` ends it on the server at that time (single sign-on: OIDC_SESSION_HOURS); by default
    SESSION_MAX_HOURS from now.
    """
    session.clear()
    LoginSession.forget_older_than(utcnow() - current_app.permanent_session_lifetime)
    expires_at = expires_at or utcnow() + timedelta(hours=services.settings().session_max_hours)
    record, sid = LoginSession.start(user, client_address(), expires_at)
    db.session.add(record)
    login_user(user)
    session[SESSION_ID_KEY] = sid
    session[BROWSER_KEY] = _browser()
    session[SEEN_KEY] = time.time()
    db.session.commit()


def proven_now() -> None:
    """This browser just gave the password (or a code): steps that need a recent proof may go ahead."""
    session[PROVEN_KEY] = time.time()


def proven_recently() -> bool:
    at = session.get(PROVEN_KEY)
    return isinstance(at, (int, float)) and 0 <= time.time() - at <= PROOF_LASTS_SECONDS


def end_session() -> None:
    """Sign out here: this sign-in ends on the server too, so a copy of its cookie stops working."""
    record = _this_sign_in()
    if record is not None and record.ended_at is None:
        record.ended_at = utcnow()
        db.session.commit()
    logout_user()
    session.clear()


def load_user_from_token(req) -> User | None:
    """The user of the request's bearer token, looked up once per request."""
    if "token_user" not in g:
        g.token_user = _user_of_token(req)
    return g.token_user


def _user_of_token(req) -> User | None:
    header = req.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    # Looked up by digest: comparing digests leaks nothing about the token itself.
    record = db.session.execute(TOKEN_BY_DIGEST, {"digest": ApiToken.hash(token.strip())}).unique().scalar_one_or_none()
    if record is None or not record.usable or not _provider_still_vouches(record.user):
        return None
    now = utcnow()
    # "Last used" to the minute: a script polling a job every 50 ms would otherwise write to the
    # console store on every request (that write was most of a poll's cost, bench/README.md).
    if record.last_used_at is None or now - record.last_used_at >= TOKEN_USE_RECORDED_EVERY:
        record.last_used_at = now
        db.session.commit()
    g.api_token, g.token_role = record, record.role
    return record.user


def _provider_still_vouches(user: User) -> bool:
    """A single sign-on user's token works only within OIDC_SESSION_HOURS of their last sign-in: the
    provider decides who they are and what role they have, and it was last asked then."""
    if not user.is_sso:
        return True
    oidc = services.settings().oidc
    if oidc is None or user.last_login_at is None:
        return False
    return user.last_login_at + timedelta(hours=oidc.session_hours) > utcnow()


def signed_in_by_token() -> bool:
    """This request's user was signed in by a real API token (not by a session, whatever its headers)."""
    return g.get("api_token") is not None


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
                abort(403, role_refusal(role))
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


def role_refusal(role: str) -> str:
    """Why the asker may not: the role they lack, and whether their own role or their token's limit stops them."""
    acting, own = acting_role(), own_role()
    if acting != own and own != "none" and ROLES.index(own) >= ROLES.index(role):
        return f"This needs the {role} role; you are signed in as {own}, but this token is limited to {acting}"
    return f"This needs the {role} role; you are signed in as {own}"


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


def acting_role(target: str | None = None) -> str:
    """The role the signed-in user acts with on `target` (default: here): their own there, capped by the API
    token's (and a single sign-on user's token by the role the provider gave at their last sign-in)."""
    role = own_role(target)
    caps = [g.get("token_role"), current_user.role if signed_in_by_token() and current_user.is_sso else None]
    for cap in caps:
        if role != "none" and cap is not None and ROLES.index(cap) < ROLES.index(role):
            role = cap
    return role


def current_actor() -> Actor:
    """Who is asking, for the application layer (which never reads the request itself)."""
    roles = {t.name: acting_role(t.name) for t in services.console_settings().targets}
    return Actor(current_user.username, acting_role(), client_address(), roles)


def failure_limit(name: str, allowed: int, window_seconds: int) -> FailureLimit:
    """A failure counter in this console's Redis namespace; the caller names its parts (user, address, ...)."""
    return operations.failure_limit(operations.collaborators(), name, allowed, window_seconds)


def client_address() -> str:
    return request.remote_addr or "unknown"
