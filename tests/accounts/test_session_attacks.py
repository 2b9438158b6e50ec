"""Attacks on sessions: a forged X-Forwarded-For, idle and long sessions, Secure cookies and HSTS behind https."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from app.extensions import db
from app.store.models import LoginSession, utcnow
from tests.accounts.test_sessions import assert_signed_in, assert_signed_out
from tests.helpers import AuthActions, sign_in


def test_a_stolen_cookie_cannot_claim_its_victims_address_with_x_forwarded_for(app, make_user):
    make_user("olga", "operator")
    victim, thief = app.test_client(), app.test_client()
    victim.environ_base["REMOTE_ADDR"], thief.environ_base["REMOTE_ADDR"] = "198.51.100.7", "203.0.113.66"
    assert AuthActions(victim).login("olga").status_code == 302
    thief.set_cookie("session", victim.get_cookie("session").value)
    answer = thief.get("/account", headers={"X-Forwarded-For": "198.51.100.7"})
    assert answer.status_code == 302 and answer.location.startswith("/login")
    assert_signed_in(victim, "olga")


def test_a_session_ends_after_idle_minutes_and_max_hours(make_app, make_user):
    app = make_app(SESSION_IDLE_MINUTES="15", SESSION_MAX_HOURS="8")
    assert app.permanent_session_lifetime == timedelta(hours=8)
    make_user("olga", "operator")
    client, _ = sign_in(app, "olga")
    with app.app_context():
        record = db.session.execute(db.select(LoginSession)).scalar_one()
        assert timedelta(hours=7, minutes=59) < record.expires_at - record.started_at <= timedelta(hours=8)
    with client.session_transaction() as cookie:
        cookie["seen_at"] = time.time() - 14 * 60  # last request 14 minutes ago: still on …
    assert_signed_in(client, "olga")
    with client.session_transaction() as cookie:
        assert time.time() - cookie["seen_at"] < 5  # … and that request counts as activity
        cookie["seen_at"] = time.time() - 16 * 60  # 16 minutes of nothing: over, on the server too
    assert_signed_out(client, "/account")
    with app.app_context():
        assert db.session.execute(db.select(LoginSession)).scalar_one().ended_at is not None

    again, _ = sign_in(app, "olga")
    with app.app_context():
        for record in db.session.execute(db.select(LoginSession).filter_by(ended_at=None)).scalars():
            record.expires_at = utcnow() - timedelta(seconds=1)  # SESSION_MAX_HOURS after sign-in, however busy
        db.session.commit()
    assert_signed_out(again, "/account")


def test_session_settings_are_validated_and_named(app_env):
    from app.config import ConfigError, Settings

    defaults = Settings.from_env(app_env)
    assert (defaults.session_idle_minutes, defaults.session_max_hours) == (60, 12)
    for name, raw in (("SESSION_IDLE_MINUTES", "0"), ("SESSION_IDLE_MINUTES", "soon"), ("SESSION_MAX_HOURS", "9999")):
        with pytest.raises(ConfigError) as caught:
            Settings.from_env({**app_env, name: raw})
        assert str(caught.value).startswith(name)


def test_an_https_public_url_turns_on_secure_cookies_and_hsts(make_app):
    app = make_app(PUBLIC_URL="https://console.example")
    answer = app.test_client().get("/login")  # its form's CSRF token starts a session cookie
    assert "Secure" in answer.headers["Set-Cookie"]
    assert answer.headers["Strict-Transport-Security"].startswith("max-age=")
    plain = make_app(PUBLIC_URL="https://console.example", SESSION_COOKIE_SECURE="false")
    assert "Strict-Transport-Security" not in plain.test_client().get("/login").headers
    assert not make_app(PUBLIC_URL="http://console.internal").config["SESSION_COOKIE_SECURE"]
