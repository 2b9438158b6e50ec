"""Issue 12's low findings, each tried as the review did: formula cells, missing fields, odd arguments, HSTS."""

from __future__ import annotations

import csv
import io

from tests.conftest import backup_run_in_process
from tests.test_beyond import signed_in, storage_of


def test_audit_csv_cells_that_could_start_a_formula_are_escaped(app, make_user):
    from app import audit

    with app.app_context():
        audit.record("pin", "ok", username="mallory", target="=HYPERLINK(\"http://x\")", detail="@SUM(A1:A9)")
        audit.record("pin", "ok", username="mallory", target="+1", detail="-2+3")
        audit.record("pin", "ok", username="mallory", target="plain", detail="a = b")
    client, _ = signed_in(app, make_user, "admin", "ada")
    rows = list(csv.DictReader(io.StringIO(client.get("/audit.csv").get_data(as_text=True))))
    cells = {(r["target"], r["detail"]) for r in rows if r["user"] == "mallory"}
    assert cells == {("'=HYPERLINK(\"http://x\")", "'@SUM(A1:A9)"), ("'+1", "'-2+3"), ("plain", "a = b")}


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
    from tests.conftest import AuthActions

    token = AuthActions(client).csrf_token("/login")
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token},
                       headers={"X-Forwarded-For": address})  # fmt: skip


def test_behind_trusted_proxies_an_attackers_failures_do_not_lock_out_the_real_user(make_app, make_user):
    from tests.conftest import PASSWORD

    app = make_app(TRUSTED_PROXIES="1")
    make_user("ada", "admin")
    attacker = app.test_client()
    for _ in range(5):
        assert sign_in_from(attacker, "203.0.113.9", "ada", "guess").status_code == 401
    assert sign_in_from(attacker, "203.0.113.9", "ada", PASSWORD).status_code == 429
    assert sign_in_from(app.test_client(), "198.51.100.7", "ada", PASSWORD).status_code == 302
    from app.models import AuditEvent

    with app.app_context():
        addresses = {e.address for e in AuditEvent.query.filter_by(action="login", outcome="failed")}
    assert addresses == {"203.0.113.9"}


def test_without_trusted_proxies_x_forwarded_for_is_ignored(make_app, make_user):
    app = make_app()
    make_user("ada", "admin")
    assert sign_in_from(app.test_client(), "203.0.113.9", "ada", "guess").status_code == 401
    from app.models import AuditEvent

    with app.app_context():
        assert {e.address for e in AuditEvent.query.filter_by(action="login")} == {"127.0.0.1"}
