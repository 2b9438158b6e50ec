"""Behind a reverse proxy: only trusted hops name the client, the scheme is forwarded, HSTS only with secure cookies."""

from __future__ import annotations

import pytest

from tests.helpers import signed_in


def test_hsts_only_when_cookies_are_secure(make_app):
    assert "Strict-Transport-Security" not in make_app().test_client().get("/login").headers
    secure = make_app(SESSION_COOKIE_SECURE="true").test_client().get("/login").headers
    assert secure["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def sign_in_from(client, address: str, username: str, password: str):
    from tests.helpers import AuthActions

    token = AuthActions(client).csrf_token("/login")
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token},
                       headers={"X-Forwarded-For": address})  # fmt: skip


def test_behind_trusted_proxies_an_attackers_failures_do_not_lock_out_the_real_user(make_app, make_user):
    from app.web.identity import ADDRESS_FAILURES_ALLOWED, USERNAME_FREE_FAILURES
    from tests.helpers import PASSWORD

    app = make_app(TRUSTED_PROXIES="1")
    make_user("ada", "admin")
    attacker = app.test_client()
    # ada's free failures (no slow-down), then other names until the address is spent
    others = ADDRESS_FAILURES_ALLOWED - USERNAME_FREE_FAILURES
    guesses = ["ada"] * USERNAME_FREE_FAILURES + [f"guess{i}" for i in range(others)]
    for name in guesses:
        assert sign_in_from(attacker, "203.0.113.9", name, "guess").status_code == 401
    refused = sign_in_from(attacker, "203.0.113.9", "ada", PASSWORD)  # even the right password, from there
    assert refused.status_code == 429 and "Too many failed sign-ins" in refused.get_data(as_text=True)
    assert sign_in_from(app.test_client(), "198.51.100.7", "ada", PASSWORD).status_code == 302
    from app.store.models import AuditEvent

    with app.app_context():
        addresses = {e.address for e in AuditEvent.query.filter_by(action="login", outcome="failed")}
    assert addresses == {"203.0.113.9"}


def test_without_trusted_proxies_x_forwarded_for_is_ignored(make_app, make_user):
    app = make_app()
    make_user("ada", "admin")
    assert sign_in_from(app.test_client(), "203.0.113.9", "ada", "guess").status_code == 401
    from app.store.models import AuditEvent

    with app.app_context():
        assert {e.address for e in AuditEvent.query.filter_by(action="login")} == {"127.0.0.1"}


def test_behind_a_proxy_the_scheme_is_forwarded_but_a_forwarded_host_never_reaches_reset_links(make_app, make_user):
    import re

    app = make_app(TRUSTED_PROXIES="1")
    client, auth = signed_in(app, make_user, "admin", "ada")
    bob = make_user("bob", "viewer")
    token = auth.csrf_token("/users")
    # (the same address as at sign-in: Flask-Login's strong session protection ties the session to it)
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example",
               "Referer": "https://localhost/users"}  # over HTTPS, CSRF also checks the referrer  # fmt: skip
    page = client.post(f"/users/{bob}/reset", data={"csrf_token": token}, headers=headers).get_data(as_text=True)
    assert re.search(r'id="set-password-link">https://localhost/set-password/', page), "the link keeps this host"
    assert "evil.example" not in page


def test_trusted_proxies_must_be_a_hop_count(app_env):

    from app.config import ConfigError, Settings

    for raw in ("-1", "two", "1.5"):
        with pytest.raises(ConfigError) as caught:
            Settings.from_env({**app_env, "TRUSTED_PROXIES": raw})
        assert "TRUSTED_PROXIES" in str(caught.value)
    assert Settings.from_env({**app_env, "TRUSTED_PROXIES": "2"}).trusted_proxies == 2
