from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from app import audit
from app.extensions import db
from app.models import User, utcnow
from app.ratelimit import FailureLimit
from app.web.auth import client_address, failure_limit
from app.web.auth.forms import LoginForm, safe_next

bp = Blueprint("auth", __name__)

LOGIN_FAILURES_ALLOWED = 5
LOGIN_WINDOW_SECONDS = 15 * 60


def login_limit() -> FailureLimit:
    return failure_limit("login", LOGIN_FAILURES_ALLOWED, LOGIN_WINDOW_SECONDS)


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("backups.index"))
    form = LoginForm(next=request.args.get("next", ""))
    status = 200
    if form.validate_on_submit():
        username = form.username.data.strip()
        address = client_address()
        limit = login_limit()
        wait = limit.blocked_for(username.lower(), address)
        if wait:
            audit.record("login", "rate-limited", username=username, address=address)
            flash(f"Too many failed sign-ins. Try again in {-(-wait // 60)} minute(s).", "error")
            return render_template("auth/login.html", form=form), 429
        user = db.session.execute(db.select(User).where(User.username == username)).scalar_one_or_none()
        if user and user.active and user.check_password(form.password.data):
            limit.reset(username.lower(), address)
            session.clear()  # a fresh session at sign-in: no fixation
            login_user(user)
            user.last_login_at = utcnow()
            db.session.commit()
            audit.record("login", "ok", username=user.username, address=address)
            return redirect(safe_next(form.next.data) or url_for("backups.index"))
        limit.failed(username.lower(), address)
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
    logout_user()
    session.clear()
    flash("Signed out.", "info")
    return redirect(url_for("auth.login"))
