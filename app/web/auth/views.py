from __future__ import annotations

import secrets
import time
from functools import cache

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.security import check_password_hash, generate_password_hash

from app import audit
from app.extensions import db
from app.models import User, utcnow
from app.ratelimit import FailureLimit
from app.web.auth import client_address, end_session, failure_limit, start_session
from app.web.auth.forms import LoginForm, safe_next

bp = Blueprint("auth", __name__)

# Failed sign-ins are limited per address only. Per username they slow down and never lock:
# a lock per username would let anyone lock the real user out from anywhere.
ADDRESS_FAILURES_ALLOWED = 20
LOGIN_WINDOW_SECONDS = 15 * 60
USERNAME_FREE_FAILURES = 5  # typos cost nothing
SLOWDOWN_MAX_SECONDS = 3.0


def address_limit() -> FailureLimit:
    return failure_limit("login-address", ADDRESS_FAILURES_ALLOWED, LOGIN_WINDOW_SECONDS)


def username_failures() -> FailureLimit:
    return failure_limit("login-username", USERNAME_FREE_FAILURES, LOGIN_WINDOW_SECONDS)


def slowdown_seconds(failures: int) -> float:
    """Wait before checking a password: none for the first few failures, then 0.5 s doubling, capped."""
    if failures < USERNAME_FREE_FAILURES:
        return 0.0
    return min(0.5 * 2 ** min(failures - USERNAME_FREE_FAILURES, 8), SLOWDOWN_MAX_SECONDS)


@cache
def _dummy_hash() -> str:
    return generate_password_hash(secrets.token_urlsafe(16))


def password_matches(user: User | None, password: str) -> bool:
    """Checks a hash even for an unknown username (a dummy one), so timing does not tell who exists."""
    if user is None:
        check_password_hash(_dummy_hash(), password)
        return False
    return user.check_password(password)


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("backups.index"))
    form = LoginForm(next=request.args.get("next", ""))
    status = 200
    if form.validate_on_submit():
        username = form.username.data.strip()
        address = client_address()
        per_address, per_username = address_limit(), username_failures()
        wait = per_address.blocked_for(address)
        if wait:
            audit.record("login", "rate-limited", username=username, address=address)
            flash(f"Too many failed sign-ins from your address. Try again in {-(-wait // 60)} minute(s).", "error")
            return render_template("auth/login.html", form=form), 429
        time.sleep(slowdown_seconds(per_username.count(username.lower())))
        user = db.session.execute(db.select(User).where(User.username == username)).scalar_one_or_none()
        matches = password_matches(user, form.password.data)  # a disabled user costs the same check
        if user and user.active and matches:
            per_username.reset(username.lower())  # not the address: a valid account must not reset it
            start_session(user)  # a fresh session at sign-in: no fixation
            user.last_login_at = utcnow()
            db.session.commit()
            audit.record("login", "ok", username=user.username, address=address)
            return redirect(safe_next(form.next.data) or url_for("backups.index"))
        per_address.failed(address)
        per_username.failed(username.lower())
        audit.record("login", "failed", username=username, address=address, detail="wrong username or password")
        flash("Wrong username or password.", "error")
        status = 401
    elif request.method == "POST":
        status = 400
    return render_template("auth/login.html", form=form), status


@bp.route("/logout", methods=["POST"])
def logout():
    if current_user.is_authenticated:
        audit.record("logout", "ok", username=current_user.username, address=client_address())
    end_session()
    flash("Signed out.", "info")
    return redirect(url_for("auth.login"))
