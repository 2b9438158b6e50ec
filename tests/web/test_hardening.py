"""Issue 12's low findings, each tried as the review did: formula cells, missing fields, odd arguments, HSTS."""

from __future__ import annotations

import csv
import io
import time

import pytest

from tests.helpers import backup_run_in_process, signed_in, storage_of


def test_audit_csv_cells_that_could_start_a_formula_are_escaped(app, make_user):
    from app.store import audit

    with app.app_context():
        audit.record("pin", "ok", username="mallory", target='=HYPERLINK("http://x")', detail="@SUM(A1:A9)")
        audit.record("pin", "ok", username="mallory", target="+1", detail="-2+3")
        audit.record("pin", "ok", username="mallory", target="plain", detail="a = b")
    client, _ = signed_in(app, make_user, "admin", "ada")
    rows = list(csv.DictReader(io.StringIO(client.get("/audit.csv").get_data(as_text=True))))
    cells = {(r["target"], r["detail"]) for r in rows if r["user"] == "mallory"}
    assert cells == {('\'=HYPERLINK("http://x")', "'@SUM(A1:A9)"), ("'+1", "'-2+3"), ("plain", "a = b")}


def test_a_pin_without_a_note_field_pins_without_a_note(app, make_user):
    filename = backup_run_in_process(app)["result"]["filename"]
    client, auth = signed_in(app, make_user, "operator", "olga")
    answer = client.post(f"/backups/{filename}/pin", data={"csrf_token": auth.csrf_token("/")})
    assert answer.status_code == 303
    assert storage_of(app).stat(f"{filename}.pin") is not None  # the pin's sidecar, beside the backup


def test_unknown_query_arguments_on_the_audit_page_are_ignored(app, make_user):
    client, _ = signed_in(app, make_user, "admin", "ada")
    for query in ("endpoint=x", "endpoint=x&page=2", "_external=1", "user=ada&anchor=x"):
        assert client.get(f"/audit?{query}").status_code == 200, query


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
    from app.web.auth.identity import ADDRESS_FAILURES_ALLOWED, USERNAME_FREE_FAILURES
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


def timed_sign_in(client, address: str, username: str, password: str) -> float:
    started = time.perf_counter()
    answer = sign_in_from(client, address, username, password)
    elapsed = time.perf_counter() - started
    assert answer.status_code in (302, 401), answer.status_code
    return elapsed


def test_many_failures_for_one_username_slow_it_down_but_never_lock_it(make_app, make_user):
    from app.web.auth.views import SLOWDOWN_MAX_SECONDS, USERNAME_FREE_FAILURES, slowdown_seconds
    from tests.helpers import PASSWORD

    app = make_app(TRUSTED_PROXIES="1")
    make_user("ada", "admin")
    attacker = app.test_client()
    # from a new address each time, as a botnet would: only the username's slow-down applies
    took = [timed_sign_in(attacker, f"203.0.113.{i}", "ada", "guess") for i in range(USERNAME_FREE_FAILURES + 2)]
    assert took[-1] >= 1.0 > took[0]  # the 7th failure waited 1 s; the first did not
    real = timed_sign_in(app.test_client(), "198.51.100.7", "ada", PASSWORD)
    assert 2.0 <= real < SLOWDOWN_MAX_SECONDS + 2  # slowed (2 s), then in
    assert timed_sign_in(app.test_client(), "198.51.100.7", "ada", PASSWORD) < 1.0  # a success clears it
    assert slowdown_seconds(10**9) == SLOWDOWN_MAX_SECONDS  # capped however long the attack goes on


def test_an_unknown_username_costs_the_same_hash_check_as_a_wrong_password(make_app, make_user):
    from statistics import median

    app = make_app()
    make_user("ada", "admin")
    client = app.test_client()
    timed_sign_in(client, "192.0.2.1", "warm-up", "x")  # the first unknown name makes the dummy hash once
    # 5 of each stays within a username's free failures and the address's limit: nothing is slowed down
    known = median(timed_sign_in(client, "192.0.2.1", "ada", f"wrong{i}") for i in range(5))
    unknown = median(timed_sign_in(client, "192.0.2.1", f"nobody{i}", "wrong") for i in range(5))
    assert unknown >= 0.5 * known, (unknown, known)  # without the dummy hash: about 0.05 x


def test_wrong_passkeys_are_limited_for_the_whole_console_not_only_per_admin(app, make_user, token_for):
    from app.operations import PASSKEY_ENVIRONMENT_FAILURES_ALLOWED, PASSKEY_FAILURES_ALLOWED
    from tests.helpers import PASSKEY, restore_api

    filename = backup_run_in_process(app)["result"]["filename"]
    client = app.test_client()
    # each new admin spends their own 5 guesses, until the console's 20 are gone
    for n in range(PASSKEY_ENVIRONMENT_FAILURES_ALLOWED // PASSKEY_FAILURES_ALLOWED):
        make_user(f"admin{n}", "admin")
        headers = token_for(f"admin{n}")
        for i in range(PASSKEY_FAILURES_ALLOWED):
            assert restore_api(client, headers, filename, passkey=f"guess-{n}-{i}").status_code == 403
    make_user("fresh", "admin")  # another admin does not reset the count
    refused = restore_api(client, token_for("fresh"), filename, passkey=PASSKEY)
    assert refused.status_code == 429 and "too many wrong passkeys" in refused.get_json()["error"]


# names that clash with url_for's own arguments, odd values for the known ones, and plain unknowns
ODD_QUERY = "endpoint=x&_external=1&_anchor=x&_method=POST&_scheme=javascript&values=1&page=abc&next=//evil&zzz=1"


def test_unknown_query_arguments_on_every_page_never_give_a_500(app, make_user):
    filename = backup_run_in_process(app)["result"]["filename"]
    pages = ["/", "/users", "/account", "/audit", "/audit.csv", "/settings", "/retention", "/healthz",
             "/api/setting/backups", "/jobs/no-such-job", "/api/jobs/no-such-job", f"/backups/{filename}/download",
             f"/backups/{filename}/restore", "/set-password/no-such-link"]  # fmt: skip
    anonymous = app.test_client()
    assert anonymous.get(f"/login?{ODD_QUERY}").status_code == 200
    client, _ = signed_in(app, make_user, "admin", "ada")
    for path in pages:
        status = client.get(f"{path}?{ODD_QUERY}").status_code
        assert status < 500, (path, status)
        assert anonymous.get(f"{path}?{ODD_QUERY}").status_code < 500, path


def test_every_form_posted_with_none_of_its_fields_never_gives_a_500(app, make_user):
    filename = backup_run_in_process(app)["result"]["filename"]
    client, auth = signed_in(app, make_user, "admin", "ada")
    other = make_user("bob", "viewer")  # the user forms act on someone else, so ada stays signed in
    token = auth.csrf_token("/")
    posts = [r for r in app.url_map.iter_rules() if "POST" in r.methods and not r.rule.startswith("/api/")]
    assert len(posts) >= 8
    for rule in sorted(posts, key=lambda r: r.rule in ("/logout", "/account/sign-out-everywhere")):  # sign-outs last
        path = rule.rule.replace("<path:filename>", filename).replace("<job_id>", "no-such-job")
        path = path.replace("<secret>", "no-such-link").replace("<int:user_id>", str(other))
        path = path.replace("<int:token_id>", "999999")
        status = client.post(path, data={"csrf_token": token}).status_code
        assert status < 500, (rule.rule, status)


def test_a_client_tools_environment_keeps_libpq_tls_and_locale_but_no_secret(app_env, monkeypatch):
    from app.adapters.postgres import child_env
    from app.config import Settings

    target = Settings.from_env(
        {**app_env, "DATABASE_URL": "postgresql://dumper:pw-of-target@db.internal:6543/shop"}
    ).target
    kept = {"PGSSLMODE": "verify-full", "PGSSLROOTCERT": "/etc/ca.pem", "LC_ALL": "C.UTF-8", "TZ": "UTC"}
    dropped = {"PGSERVICE": "elsewhere", "RESTORE_PASSKEY": "pk", "SECRET_KEY": "sk", "AWS_SECRET_ACCESS_KEY": "aws",
               "REDIS_URL": "redis://x", "PGPASSWORD": "the-worker's-own"}  # fmt: skip
    for name, value in {**kept, **dropped}.items():
        monkeypatch.setenv(name, value)
    env = child_env(target, application_name="pgconsole-backup")
    assert {k: env[k] for k in kept} == kept
    assert (set(dropped) - {"PGPASSWORD"}).isdisjoint(env)
    assert env["PGPASSWORD"] == "pw-of-target"  # the target's password, in the environment (never argv)
    assert (env["PGHOST"], env["PGPORT"], env["PGUSER"], env["PGDATABASE"]) == ("db.internal", "6543", "dumper", "shop")
    assert env["PGAPPNAME"] == "pgconsole-backup" and env["PGCONNECT_TIMEOUT"] == "10"
