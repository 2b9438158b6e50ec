"""Issue 29, the sign-in and token findings: each test makes the attack the issue describes.

M4 the REQUIRE_2FA gate and an Authorization header; M6 one two-factor code posted in parallel;
M7 tokens that outlived sign-out, a password change and the provider's word; L1 token roles above
the asker's cap; L3 the provider's error text; L5 the set-password secret in an access log; L6 the
sign-in limit under parallel guesses; L7 X-Forwarded-For, idle and long sessions, Secure and HSTS;
L8 look-alike and unverified single sign-on names; digits that are not ASCII in a code.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import urlsplit

import pyotp
import pytest
import requests
from psycopg import sql
from werkzeug.serving import make_server

from app.extensions import db
from app.store.models import ApiToken, AuditEvent, LoginSession, User, utcnow
from tests.accounts.test_second_factor import code_step, enrol, next_code, password_step
from tests.accounts.test_sessions import assert_signed_in, assert_signed_out
from tests.accounts.test_sso import sso_settings, sso_sign_in
from tests.helpers import PASSWORD, AuthActions, post, sign_in, signed_in, user_named
from tests.support import ROOT
from tests.support.databases import drop_database, new_name
from tests.support.processes import child_env, free_port, wait_until_answering

pytestmark = pytest.mark.web_only  # sign-in, tokens and sessions: the target database is never reached

ARABIC_INDIC_ZERO = 0x660


@contextlib.contextmanager
def served(app) -> Iterator[str]:
    """The app behind a real threaded HTTP server, for requests that really run at the same time."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def at_once(calls: list) -> list:
    """Run every call in its own thread, released together."""
    start = threading.Barrier(len(calls))

    def run(call):
        start.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def browser_csrf(browser: requests.Session, url: str) -> str:
    return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', browser.get(url, timeout=30).text)[1]


def token_role_on(app, headers: dict[str, str]) -> int:
    """What an admin-only page answers for this token: 200 (admin), 403 (less), 401 (no longer works)."""
    return app.test_client().get("/users", headers=headers).status_code


@pytest.fixture(params=["sqlite", "postgresql"])
def store_app(request, make_app, app_env, pg_admin):
    """A console on the tests' usual SQLite store, or on a PostgreSQL store made by `db upgrade`."""
    if request.param == "sqlite":
        yield make_app()
        return
    store = new_name("pgct_store")
    pg_admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(store)))
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{store}"
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT,
                          env=child_env({**app_env, "CONSOLE_DATABASE_URL": url}), capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    app = make_app(CONSOLE_DATABASE_URL=url)
    yield app
    with app.app_context():
        db.engine.dispose()
    drop_database(pg_admin, store)


# --------------------------------------------------------------------------- M4: the enrolment gate


def test_an_authorization_header_does_not_take_an_unenrolled_admin_past_enrolment(make_app, make_user, token_for):
    app = make_app(REQUIRE_2FA="admins")
    make_user("ada", "admin")
    client, auth = sign_in(app, "ada")
    csrf = auth.csrf_token("/account/two-factor")  # the one page she may use
    for header in ("Bearer not-a-token", "Basic YWRhOnB3", "anything"):
        made = client.post("/users", data={"username": "mallory", "role": "admin", "password": "x" * 12,
                                           "csrf_token": csrf}, headers={"Authorization": header})  # fmt: skip
        assert made.status_code == 302 and made.location.endswith("/account/two-factor"), header
        assert client.get("/api/setting/backups", headers={"Authorization": header}).status_code == 403
    with app.app_context():
        assert db.session.execute(db.select(User).filter_by(username="mallory")).scalar_one_or_none() is None
    # A real token alone is still judged by the token (a script has no way to enrol).
    assert app.test_client().get("/api/setting/backups", headers=token_for("ada")).status_code == 200


def test_an_admin_of_one_target_must_enrol_under_require_2fa_admins(make_app, make_user):
    from app.accounts.people import find_user, grant_target_role

    app = make_app(REQUIRE_2FA="admins")
    make_user("tess", "viewer")
    target = app.config["SETTINGS"].target_name
    with app.app_context():
        grant_target_role(find_user("tess"), target, "admin", "test", [target])
    client, _ = sign_in(app, "tess")
    assert client.get("/").location.endswith("/account/two-factor")


# --------------------------------------------------------------------------- M6: a code is accepted once


def test_one_totp_code_posted_in_parallel_signs_in_once(store_app):
    secret, _ = enrolled_ada(store_app)
    assert parallel_code_sign_ins(store_app, next_code(secret)) == 1


def test_one_recovery_code_posted_in_parallel_signs_in_once(store_app):
    from app.accounts.second_factor import recovery_codes_left

    _, codes = enrolled_ada(store_app)
    assert parallel_code_sign_ins(store_app, codes[0]) == 1
    with store_app.app_context():
        assert recovery_codes_left(db.session.get(User, user_named(store_app, "ada").id)) == len(codes) - 1


def enrolled_ada(app) -> tuple[str, list[str]]:
    """ada, an admin in this app's store, with two-factor codes: (secret, recovery codes)."""
    from app.accounts.people import create_user

    with app.app_context():
        create_user("ada", "admin", PASSWORD, "test")
    client = app.test_client()
    password_step(client)
    return enrol(client)


def parallel_code_sign_ins(app, code: str, browsers: int = 8) -> int:
    """Eight browsers past the password step post the same code at the same moment; how many got in."""
    with served(app) as base:
        sessions = []
        for _ in range(browsers):
            browser = requests.Session()
            login = {"username": "ada", "password": PASSWORD, "csrf_token": browser_csrf(browser, base + "/login")}
            assert browser.post(base + "/login", data=login, timeout=30).url == base + "/login/code"
            sessions.append((browser, browser_csrf(browser, base + "/login/code")))

        def post_code(browser, csrf):
            return lambda: browser.post(base + "/login/code", data={"code": code, "csrf_token": csrf},
                                        allow_redirects=False, timeout=60)  # fmt: skip

        answers = at_once([post_code(b, c) for b, c in sessions])
    assert all(a.status_code in (302, 401) for a in answers), [a.status_code for a in answers]
    return sum(a.status_code == 302 for a in answers)


# --------------------------------------------------------------------------- Unicode digits in a code


def arabic_indic(code: str) -> str:
    return "".join(chr(ARABIC_INDIC_ZERO + int(c)) for c in code)


def test_a_code_typed_in_arabic_indic_digits_works_at_enrolment_and_sign_in(app, make_user):
    make_user("ada", "admin")
    client = app.test_client()
    password_step(client)
    page = client.get("/account/two-factor").get_data(as_text=True)
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page)[1]
    csrf = AuthActions(client).csrf_token("/account/two-factor")
    for junk in ("١٢٣", "é١٢٣٤٥", "²²²²²²"):
        answer = client.post("/account/two-factor", data={"code": junk, "csrf_token": csrf})
        assert answer.status_code == 400, junk
    done = client.post("/account/two-factor", data={"code": arabic_indic(pyotp.TOTP(secret).now()), "csrf_token": csrf})
    assert done.status_code == 200 and "recovery" in done.get_data(as_text=True).lower()

    browser = app.test_client()
    password_step(browser)
    for junk in ("١٢٣٤٥٦", "é١٢٣٤٥", "٫٫٫٫٫٫"):
        assert code_step(browser, junk).status_code == 401, junk
    assert code_step(browser, arabic_indic(next_code(secret))).status_code == 302
    assert browser.get("/").status_code == 200


# --------------------------------------------------------------------------- M7 and L1: tokens


def make_token(client, auth, role: str, proof: str | None = None, name: str = "ci"):
    data = {"token-name": name, "token-role": role, "token-expires_days": "", "token-submit": "Create token"}
    if proof is not None:
        data["token-proof"] = proof
    page = post(client, auth, "/account", data, page="/account")
    match = re.search(r'<code id="new-token">(pgc_[^<]+)</code>', page.get_data(as_text=True))
    return page, match and {"Authorization": f"Bearer {match[1]}"}


def test_a_stolen_cookie_cannot_make_a_token_without_the_password(app, make_user):
    thief, auth = signed_in(app, make_user, "admin", "ada")  # a copy of ada's session cookie, nothing more
    assert 'name="token-proof"' in thief.get("/account").get_data(as_text=True)
    page, token = make_token(thief, auth, "admin")
    assert page.status_code == 400 and token is None and "Give your password" in page.get_data(as_text=True)
    page, token = make_token(thief, auth, "admin", proof="a guess at it")
    assert page.status_code == 400 and token is None
    with app.app_context():
        assert db.session.execute(db.select(ApiToken)).first() is None
        refused = AuditEvent.query.filter_by(action="token.create", outcome="refused").count()
        assert refused == 2
    # Only ada, who knows it, gets one; then, for a few minutes, without typing it again.
    page, token = make_token(thief, auth, "admin", proof=PASSWORD)
    assert page.status_code == 200 and token_role_on(app, token) == 200
    assert make_token(thief, auth, "viewer", name="second")[1] is not None


def test_a_fresh_code_from_the_app_proves_it_too(app, make_user):
    thief, auth = signed_in(app, make_user, "operator", "olga")
    olga = app.test_client()
    password_step(olga, "olga")
    secret, _ = enrol(olga)
    page, token = make_token(thief, auth, "operator", proof=next_code(secret))
    assert page.status_code == 200 and token is not None


def test_wrong_proofs_are_limited_like_wrong_sign_ins(app, make_user):
    from app.web.auth.identity import CODE_FAILURES_ALLOWED

    thief, auth = signed_in(app, make_user, "admin", "ada")
    for i in range(CODE_FAILURES_ALLOWED):
        assert make_token(thief, auth, "admin", proof=f"guess {i}")[0].status_code == 400
    page, token = make_token(thief, auth, "admin", proof=PASSWORD)  # even the right one, now
    assert token is None and "Too many failed attempts" in page.get_data(as_text=True)


def test_a_stolen_cookie_cannot_guess_the_password_on_the_change_password_form(app, make_user):
    from app.web.auth.identity import CODE_FAILURES_ALLOWED

    thief, auth = signed_in(app, make_user, "viewer", "vic")

    def change(current: str):
        return post(thief, auth, "/account", {"pw-current": current, "pw-new": "the thief's password",
                                              "pw-repeat": "the thief's password", "pw-submit": "Change password"},
                    page="/account")  # fmt: skip

    for i in range(CODE_FAILURES_ALLOWED):
        assert "not your current password" in change(f"guess {i}").get_data(as_text=True)
    assert "Too many failed attempts" in change(PASSWORD).get_data(as_text=True)
    assert AuthActions(app.test_client()).login("vic").status_code == 302  # unchanged


def test_a_password_change_revokes_tokens(app, make_user, token_for):
    make_user("vic", "viewer")
    client, auth = sign_in(app, "vic")
    headers = token_for("vic")
    assert app.test_client().get("/api/setting/backups", headers=headers).status_code == 200
    form = {"pw-current": PASSWORD, "pw-new": "a brand new password", "pw-repeat": "a brand new password",
            "pw-submit": "Change password"}  # fmt: skip
    assert post(client, auth, "/account", form, page="/account").status_code == 303
    assert "your API tokens are revoked" in client.get("/account").get_data(as_text=True)
    assert app.test_client().get("/api/setting/backups", headers=headers).status_code == 401


def test_token_roles_offered_stop_at_what_the_asker_acts_as(app, make_user):
    from app.accounts.people import PeopleError, create_token, find_user

    make_user("ada", "admin")
    with app.app_context():
        viewer_token = {"Authorization": f"Bearer {create_token(find_user('ada'), 'ro', 'viewer', None, 'test')}"}
    page = app.test_client().get("/account", headers=viewer_token).get_data(as_text=True)
    assert re.findall(r'<option[^>]*value="(\w+)"', page) == ["viewer"]  # ada's read-only token offers no more
    with app.app_context(), pytest.raises(PeopleError, match="higher role than viewer"):
        create_token(find_user("ada"), "up", "admin", None, "ada", cap="viewer")
    with app.app_context():
        assert [t.role for t in db.session.execute(db.select(ApiToken)).scalars()] == ["viewer"]


def test_an_sso_users_token_follows_the_providers_role_and_ends_with_the_sign_in(make_app, oidc_provider):
    app = make_app(**sso_settings(oidc_provider, OIDC_SESSION_HOURS="2"))
    oidc_provider.set_user("u-1", preferred_username="alice", groups=["dba"])
    laptop = app.test_client()
    sso_sign_in(laptop, oidc_provider, "u-1")
    page, token = make_token(laptop, AuthActions(laptop), "admin")  # the provider signed her in just now
    assert token is not None and "2 hours after your last single sign-on" in page.get_data(as_text=True)
    assert token_role_on(app, token) == 200
    with app.app_context():
        record = db.session.execute(db.select(ApiToken)).scalar_one()
        assert record.expires_at - utcnow() < timedelta(hours=2)

    # The provider takes her out of the admins' group: the next sign-in lowers the token with her.
    oidc_provider.set_user("u-1", preferred_username="alice", groups=["developers"])
    sso_sign_in(app.test_client(), oidc_provider, "u-1")
    assert token_role_on(app, token) == 403
    assert app.test_client().get("/api/setting/backups", headers=token).status_code == 200  # still an operator

    # Nobody signs in for OIDC_SESSION_HOURS: nothing has asked the provider since, so the token stops.
    with app.app_context():
        alice = db.session.execute(db.select(User).filter_by(username="alice")).scalar_one()
        alice.last_login_at = utcnow() - timedelta(hours=2, minutes=1)
        db.session.query(ApiToken).update({ApiToken.expires_at: None})  # even one made before this bound
        db.session.commit()
    assert app.test_client().get("/api/setting/backups", headers=token).status_code == 401

    # Signed in again (operator), then out of every group: sessions and tokens end at that refusal.
    sso_sign_in(app.test_client(), oidc_provider, "u-1")
    assert app.test_client().get("/api/setting/backups", headers=token).status_code == 200
    oidc_provider.set_user("u-1", preferred_username="alice", groups=[])
    assert sso_sign_in(app.test_client(), oidc_provider, "u-1").status_code == 403
    assert app.test_client().get("/api/setting/backups", headers=token).status_code == 401


# --------------------------------------------------------------------------- L3: the provider's error text


def test_the_callbacks_error_text_is_never_shown(make_app, oidc_provider):
    app = make_app(**sso_settings(oidc_provider))
    planted = "Your account is locked. Call +1 555 0100 to unlock it"
    for error, shown in (("access_denied", "the sign-in was denied at the identity provider"),
                         ("made_up_by_anyone", "the identity provider refused the sign-in")):  # fmt: skip
        page = app.test_client().get("/login/oidc/callback", query_string={"error": error,
                                                                           "error_description": planted})
        text = page.get_data(as_text=True)
        assert page.status_code == 400 and shown in text
        assert "Call +1 555" not in text and "made_up_by_anyone" not in text
    with app.app_context():
        assert all("555" not in (e.detail or "") for e in AuditEvent.query.filter_by(action="sso.login"))


# --------------------------------------------------------------------------- L5: the set-password secret


def test_the_set_password_secret_never_reaches_the_access_log(app_env, processes, make_user, app):
    """gunicorn with its access log on: an admin makes a link, the person uses it (without scripts)."""
    make_user("ada", "admin")
    port = free_port()
    processes.start("web", [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                            "--access-logfile", "-", "wsgi:app"], app_env)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_until_answering(base + "/login")
    admin = requests.Session()
    admin.post(base + "/login", data={"username": "ada", "password": PASSWORD,
                                      "csrf_token": browser_csrf(admin, base + "/login")}, timeout=30)  # fmt: skip
    page = admin.post(base + "/users", data={"username": "vic", "role": "viewer", "password": "",
                                             "csrf_token": browser_csrf(admin, base + "/users")}, timeout=30).text
    link = re.search(r'<code id="set-password-link">([^<]+)</code>', page)[1]
    parts = urlsplit(link)
    secret = parts.fragment
    assert len(secret) > 30 and parts.path == "/set-password/" and not parts.query
    person = requests.Session()
    form = person.get(base + parts.path, timeout=30)  # a browser never sends the fragment
    assert form.status_code == 200 and "the part of the link after #" in form.text
    data = {"secret": secret, "new": "vic's own password", "repeat": "vic's own password",
            "csrf_token": browser_csrf(person, base + parts.path)}  # fmt: skip
    assert person.post(base + parts.path, data=data, timeout=30).url == base + "/login"
    assert AuthActions(app.test_client()).login("vic", "vic's own password").status_code == 302
    log = processes.log("web")
    assert "POST /set-password/ " in log and secret not in log
    assert person.get(f"{base}/set-password/{secret}", timeout=30).status_code == 404  # no such address any more


# --------------------------------------------------------------------------- L6: the sign-in limit


def test_parallel_wrong_passwords_are_checked_no_more_than_the_limit(app, make_user):
    from app.web.auth.identity import ADDRESS_FAILURES_ALLOWED

    make_user("ada", "admin")
    with served(app) as base:

        def guess(i: int):
            def attempt():
                browser = requests.Session()
                csrf = browser_csrf(browser, base + "/login")
                return browser.post(base + "/login", data={"username": "ada", "password": f"guess {i}",
                                                           "csrf_token": csrf}, timeout=120).status_code  # fmt: skip

            return attempt

        answers = at_once([guess(i) for i in range(80)])
    assert sorted(set(answers)) == [401, 429]
    with app.app_context():
        checked = AuditEvent.query.filter_by(action="login", outcome="failed").count()
    assert checked == answers.count(401) == ADDRESS_FAILURES_ALLOWED


# --------------------------------------------------------------------------- L7: sessions


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


# --------------------------------------------------------------------------- L8: single sign-on names


def test_sso_names_that_look_like_a_local_one_are_refused(make_app, make_user, oidc_provider):
    app = make_app(**sso_settings(oidc_provider))
    make_user("rtadmin", "admin")
    # Upper case, a Cyrillic "а", full-width letters
    for sub, name in (("u-7", "RTADMIN"), ("u-8", "rt\u0430dmin"), ("u-9", "\uff52\uff54admin")):
        oidc_provider.set_user(sub, preferred_username=name, groups=["dba"])
        refused = sso_sign_in(app.test_client(), oidc_provider, sub)
        assert refused.status_code == 403, name
    with app.app_context():
        assert [u.username for u in db.session.execute(db.select(User)).scalars()] == ["rtadmin"]
        details = [e.detail for e in AuditEvent.query.filter_by(action="sso.login", outcome="refused")]
    assert "looks like 'rtadmin'" in details[0] and "characters this console does not accept" in details[1]


def test_an_unverified_email_is_no_username(make_app, oidc_provider):
    app = make_app(**sso_settings(oidc_provider))
    oidc_provider.set_user("u-5", email="ceo@example.com", email_verified=False, groups=["dba"])
    assert sso_sign_in(app.test_client(), oidc_provider, "u-5").status_code == 403
    oidc_provider.set_user("u-5", email="ceo@example.com", email_verified=True, groups=["dba"])
    assert sso_sign_in(app.test_client(), oidc_provider, "u-5").status_code == 302
