from __future__ import annotations

import secrets
import time
from functools import cache

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user
from werkzeug.security import check_password_hash, generate_password_hash

from app import services
from app.accounts import second_factor
from app.adapters.ratelimit import FailureLimit
from app.extensions import db
from app.formatting import human_count
from app.store import audit
from app.store.models import User, utcnow
from app.web.access import client_address, end_session, failure_limit, proven_now, start_session
from app.web.auth.forms import CodeForm, LoginForm
from app.web.forms import safe_next
from app.web.identity import (
    LOGIN_WINDOW_SECONDS,
    SLOWDOWN_MAX_SECONDS,
    USERNAME_FREE_FAILURES,
    address_limit,
    give_back_attempt,
    take_attempt,
)

bp = Blueprint("auth", __name__)

# Failed sign-ins are limited per address only. Per username they slow down and never lock:
# a lock per username would let anyone lock the real user out from anywhere.
# The "Code" step must follow the password within this time.
CODE_STEP_SECONDS = 5 * 60
PENDING_KEY = "pending_sign_in"


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
    if user is None or not user.password_hash:  # single sign-on accounts have no password
        check_password_hash(_dummy_hash(), password)
        return False
    return user.check_password(password)


def login_page(form: LoginForm, status: int = 200):
    settings = services.settings()
    return render_template("auth/login.html", form=form, oidc=settings.oidc, local_login=settings.local_login), status


def refuse_for_a_while(wait: int, username: str, address: str) -> None:
    """A sign-in step refused by a failure limit: audited, and the page says for how long."""
    audit.record("login", "rate-limited", username=username, address=address)
    flash(f"Too many failed sign-ins. Try again in {human_count(-(-wait // 60), 'minute')}.", "error")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("backups.index"))
    form = LoginForm(next=request.args.get("next", ""))
    status = 200
    if request.method == "POST" and services.settings().local_login == "disabled":
        audit.record("login", "refused", address=client_address(), detail="sign-in with a password is turned off")
        flash("Sign-in with a password is turned off here; use single sign-on.", "error")
        return login_page(form, 403)
    if form.validate_on_submit():
        username = form.username.data.strip()
        address = client_address()
        per_address, per_username = address_limit(), username_failures()
        wait = per_address.take(address)  # counted before the check: parallel guesses cannot all pass
        if wait:
            refuse_for_a_while(wait, username, address)
            return login_page(form, 429)
        time.sleep(slowdown_seconds(per_username.count(username.lower())))
        user = db.session.execute(db.select(User).where(User.username == username)).scalar_one_or_none()
        matches = password_matches(user, form.password.data)  # a disabled user costs the same check
        if user and user.active and matches:
            per_address.give_back(address)  # this one attempt only: a valid account must not reset it
            per_username.reset(username.lower())
            if services.settings().local_login == "admins" and user.role != "admin":
                audit.record("login", "refused", username=user.username, address=address,
                             detail="sign-in with a password is for admins only (LOCAL_LOGIN=admins)")  # fmt: skip
                flash("Only admins may sign in with a password here; use single sign-on.", "error")
                return login_page(form, 403)
            if user.has_second_factor:
                session.clear()  # what the code step needs, and nothing from before
                session[PENDING_KEY] = {"user": user.get_id(), "at": time.time(), "next": form.next.data or ""}
                return redirect(url_for("auth.code"), 303)
            return signed_in(user, form.next.data, "")
        per_username.failed(username.lower())
        audit.record("login", "failed", username=username, address=address, detail="wrong username or password")
        flash("Wrong username or password.", "error")
        status = 401
    elif request.method == "POST":
        status = 400
    return login_page(form, status)


def signed_in(user: User, next_page: str | None, how: str):
    start_session(user)  # a fresh session at sign-in: no fixation
    proven_now()  # the password (and code) were just given
    user.last_login_at = utcnow()
    db.session.commit()
    audit.record("login", "ok", username=user.username, address=client_address(), detail=how or None)
    return redirect(safe_next(next_page) or url_for("backups.index"))


def pending_user() -> tuple[User | None, str]:
    """Who passed the password step in this browser, recently enough, and where they were going."""
    pending = session.get(PENDING_KEY)
    if not isinstance(pending, dict) or time.time() - float(pending.get("at", 0)) > CODE_STEP_SECONDS:
        return None, ""
    uid, _, epoch = str(pending.get("user", "")).partition(":")
    user = db.session.get(User, int(uid)) if uid.isdigit() else None
    if user is None or not user.active or str(user.session_epoch) != epoch or not user.has_second_factor:
        return None, ""
    return user, str(pending.get("next", ""))


@bp.route("/login/code", methods=["GET", "POST"])
def code():
    """The second step for an account with two-factor codes: a code from the app, or a recovery code."""
    user, next_page = pending_user()
    if user is None:
        session.pop(PENDING_KEY, None)
        flash("Sign in with your password first (the code step lasts five minutes).", "info")
        return redirect(url_for("auth.login"))
    form = CodeForm()
    if not form.validate_on_submit():
        return render_template("auth/code.html", form=form), 400 if request.method == "POST" else 200
    address = client_address()
    wait = take_attempt(user, address)
    if wait:
        refuse_for_a_while(wait, user.username, address)
        return render_template("auth/code.html", form=form), 429
    per_username = username_failures()
    time.sleep(slowdown_seconds(per_username.count(user.username.lower())))
    kind = second_factor.check_code(user, form.code.data, services.settings(), address)
    if kind is not None:
        give_back_attempt(user, address)
        per_username.reset(user.username.lower())
        return signed_in(user, next_page, f"with a {kind}")
    per_username.failed(user.username.lower())
    audit.record("login", "failed", username=user.username, address=address, detail="wrong two-factor code")
    form.code.errors.append("Wrong code (or one that was used already).")
    return render_template("auth/code.html", form=form), 401


@bp.route("/logout", methods=["POST"])
def logout():
    if current_user.is_authenticated:
        audit.record("logout", "ok", username=current_user.username, address=client_address())
    end_session()
    flash("Signed out.", "info")
    return redirect(url_for("auth.login"))
