"""Who is asking: session sign-in for pages, bearer tokens for the API, and the role check."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, abort, g, jsonify, redirect, request, url_for
from flask_login import current_user

from app import services
from app.extensions import db, login_manager
from app.models import ApiToken, User, utcnow
from app.ratelimit import FailureLimit
from app.settings import ROLES

F = TypeVar("F", bound=Callable[..., Any])


def init_app(app: Flask) -> None:
    login_manager.user_loader(_load_user)
    login_manager.request_loader(load_user_from_token)
    login_manager.unauthorized_handler(_unauthorized)


def _load_user(user_id: str) -> User | None:
    user = db.session.get(User, int(user_id)) if user_id.isdigit() else None
    return user if user and user.active else None


def load_user_from_token(req) -> User | None:
    header = req.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    # Looked up by digest: comparing digests leaks nothing about the token itself.
    record = db.session.execute(
        db.select(ApiToken).where(ApiToken.token_hash == ApiToken.hash(token.strip()))
    ).scalar_one_or_none()
    if record is None or not record.usable:
        return None
    record.last_used_at = utcnow()
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
            if not has_role(role):
                abort(403, f"this needs the {role} role; you are signed in as {current_user.role}")
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


def has_role(role: str) -> bool:
    """The signed-in user's role, capped by the role of the API token in use, if any."""
    if not current_user.is_authenticated or not current_user.has_role(role):
        return False
    token_role = g.get("token_role")
    return token_role is None or ROLES.index(token_role) >= ROLES.index(role)


def failure_limit(name: str, allowed: int, window_seconds: int) -> FailureLimit:
    """A failure counter in this console's Redis namespace; the caller names its parts (user, address, ...)."""
    return FailureLimit(services.redis(), services.settings().redis_namespace, name, allowed, window_seconds)


def client_address() -> str:
    return request.remote_addr or "unknown"
