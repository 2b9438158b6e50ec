"""Attacks on signing in, each made as the security review described it.

The REQUIRE_2FA gate and an Authorization header; one two-factor code posted in parallel; digits
that are not ASCII in a code; the set-password secret in an access log; the sign-in limit under
parallel guesses. Tokens, sessions and single sign-on have files of their own (test_*_attacks.py).
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pyotp
import pytest
import requests
from psycopg import sql
from werkzeug.serving import make_server

from app.extensions import db
from app.store.models import AuditEvent, User
from tests.accounts.test_second_factor import code_step, enrol, next_code, password_step
from tests.helpers import PASSWORD, AuthActions, sign_in, user_named
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
    from app.web.identity import ADDRESS_FAILURES_ALLOWED

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
