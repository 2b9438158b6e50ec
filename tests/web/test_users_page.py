"""The users and account pages: forms empty after success, a validated token expiry, copyable one-time
secrets, recovery codes as a file, the last admin kept, roles explained; settings named to admins only."""

from __future__ import annotations

import re

import pytest

from app.web.people.forms import ROLE_DUTIES
from tests.helpers import PASSWORD, audit_rows, post, signed_in, user_named

pytestmark = pytest.mark.web_only


def value_of(page: str, field_id: str) -> str | None:
    tag = re.search(rf'<input [^>]*id="{field_id}"[^>]*>', page)
    assert tag, field_id
    found = re.search(r'value="([^"]*)"', tag[0])
    return found[1] if found else None


def test_add_user_empties_the_form_and_the_link_can_be_copied(app, make_user):
    client, auth = signed_in(app, make_user, "admin", "ada")
    made = post(client, auth, "/users", {"username": "newcomer", "role": "operator", "password": ""}, page="/users")
    assert made.status_code == 200
    page = made.get_data(as_text=True)
    assert 'id="set-password-link"' in page and 'data-copy="set-password-link"' in page and "copy.js" in page
    assert value_of(page, "username") in (None, "")
    assert re.search(r'<option selected value="viewer">', page)  # the default again, not the last choice


def test_each_role_is_explained_in_one_line(app, make_user):
    client, _ = signed_in(app, make_user, "admin", "ada")
    page = client.get("/users").get_data(as_text=True)
    explained = re.search(r'<dl class="roles-explained".*?</dl>', page, re.S)[0]
    for role, duty in ROLE_DUTIES.items():
        assert f"<dt>{role.capitalize()}</dt><dd>{duty}</dd>" in explained


def test_disable_is_offered_neither_on_yourself_nor_on_the_last_admin(app, make_user):
    client, auth = signed_in(app, make_user, "admin", "ada")
    make_user("olga", "operator")
    page = client.get("/users").get_data(as_text=True)
    assert "Disable ada" not in page and "This is your own account" in page
    olga = re.search(r'<form [^>]*data-confirm="Disable olga\?[^"]*">\s*<input[^>]*>\s*<button type="submit" '
                     r'class="danger">Disable olga</button>', page)  # fmt: skip
    assert olga, page
    # Refused on the server too: yourself, and the last active admin (demoted or disabled).
    ada = user_named(app, "ada")
    refused = post(client, auth, f"/users/{ada.id}/active", page="/users")
    assert refused.status_code == 303
    assert "Not changed: you cannot disable your own account" in client.get("/users").get_data(as_text=True)
    demoted = post(client, auth, f"/users/{ada.id}/role", {"role": "operator"}, page="/users")
    assert demoted.status_code == 303
    assert "Not changed: ada is the last active admin; make someone else admin first." in client.get(
        "/users").get_data(as_text=True)  # fmt: skip
    assert user_named(app, "ada").role == "admin" and user_named(app, "ada").active
    assert [e.outcome for e in audit_rows(app, "user.change")] == ["refused", "refused"]


def test_an_admin_who_disabled_another_can_enable_them_but_not_disable_themself(app, make_user):
    make_user("root", "admin")
    client, auth = signed_in(app, make_user, "admin", "ada")
    root = user_named(app, "root")
    assert post(client, auth, f"/users/{root.id}/active", page="/users").status_code == 303
    page = client.get("/users").get_data(as_text=True)
    assert "Enable root" in page and "Disable ada" not in page
    assert "Ada is the last active admin: make someone else admin first." not in page  # own account wins
    assert "This is your own account" in page


def make_token(client, auth, role: str, expiry: str):
    form = {"token-name": "ci", "token-role": role, "token-expires_days": expiry, "token-submit": "Create token",
            "token-proof": PASSWORD}  # fmt: skip
    return post(client, auth, "/account", form, page="/account")


def test_the_token_form_empties_after_a_token_is_made(app, make_user):
    client, auth = signed_in(app, make_user, "admin", "ada")
    made = make_token(client, auth, "operator", "30")
    assert made.status_code == 200
    page = made.get_data(as_text=True)
    assert 'id="new-token"' in page and 'data-copy="new-token"' in page
    assert value_of(page, "token-name") in (None, "") and value_of(page, "token-expires_days") == "90"
    assert re.search(r'<option selected value="viewer">viewer</option>', page)


@pytest.mark.parametrize("expiry", ["abc", "0", "-5", "3651", "1.5", "١٢"])
def test_a_token_expiry_that_is_not_a_number_of_days_is_refused_at_the_field(app, make_user, expiry):
    client, auth = signed_in(app, make_user, "admin", "ada")
    refused = make_token(client, auth, "viewer", expiry)
    assert refused.status_code == 400
    page = refused.get_data(as_text=True)
    error = re.search(r'<input [^>]*id="token-expires_days"[^>]*>\s*'
                      r'<p class="field-error" id="token-expires_days-error">([^<]*)</p>', page)  # fmt: skip
    assert error and "whole number of days from 1 to 3,650" in error[1], page
    assert 'aria-invalid="true"' in error[0] and 'type="text"' in error[0]  # a number field would send "" for abc
    assert 'id="new-token"' not in page and "<td>ci</td>" not in page


def test_an_empty_expiry_makes_a_token_that_never_expires(app, make_user):
    client, auth = signed_in(app, make_user, "admin", "ada")
    made = make_token(client, auth, "viewer", " ")
    page = made.get_data(as_text=True)
    assert made.status_code == 200 and 'id="new-token"' in page
    assert re.search(r"<td>ci</td>.*?<td>never</td>", page, re.S)


def test_recovery_codes_download_as_a_text_file_never_cached(app, make_user):
    client, auth = signed_in(app, make_user, "viewer", "vera")
    codes = ["abcd-efgh-jkmn-pqrs", "2345-6789-abcd-efgh"]
    got = post(client, auth, "/account/recovery-codes.txt", {"code": [*codes, "<script>", "x" * 40]}, page="/account")
    assert got.status_code == 200
    assert got.headers["Content-Disposition"] == 'attachment; filename="pgconsole-recovery-codes.txt"'
    assert got.headers["Cache-Control"] == "no-store" and got.mimetype == "text/plain"
    text = got.get_data(as_text=True)
    assert text.splitlines()[-2:] == codes and "<script>" not in text and "vera" in text
    assert post(client, auth, "/account/recovery-codes.txt", {"code": ["nope"]}, page="/account").status_code == 400
    assert client.post("/account/recovery-codes.txt", data={"code": codes}).status_code == 400  # no CSRF token


def test_the_recovery_codes_page_offers_download_and_copy(app):
    with app.test_request_context():
        from flask import render_template

        from app.web.forms import ActionForm

        page = render_template("people/recovery_codes.html", codes=["abcd-efgh-jkmn-pqrs", "2345-6789-abcd-efgh"],
                               action_form=ActionForm())  # fmt: skip
    assert 'action="/account/recovery-codes.txt"' in page and page.count('type="hidden" name="code"') == 2
    assert '<pre id="recovery-codes-text" class="sr-only">abcd-efgh-jkmn-pqrs\n2345-6789-abcd-efgh</pre>' in page
    assert 'data-copy="recovery-codes-text"' in page and "copy.js" in page


def test_a_token_limited_below_its_owners_role_is_told_so(app, make_user):
    from app.accounts.people import create_token

    make_user("ada", "admin")
    with app.app_context():
        from app.accounts.people import find_user

        token = create_token(find_user("ada"), "ci", "operator", None, "ada")
    answer = app.test_client().get("/users", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 403
    words = answer.get_data(as_text=True)
    assert "This needs the admin role; you are signed in as admin, but this token is limited to operator" in words


def test_the_backup_interval_names_its_setting_to_admins_only(make_app, make_user, token_for):
    from app import services
    from app.jobs.queue import mark_backup

    app = make_app(BACKUP_MIN_INTERVAL_SECONDS="60")
    with app.app_context():
        mark_backup(services.settings(), services.redis())  # a backup just now: the next is too soon
    for who, role, named in (("olga", "operator", False), ("ada", "admin", True)):
        make_user(who, role)
        answer = app.test_client().post("/api/setting/backup", headers=token_for(who))
        assert answer.status_code == 429
        error = answer.get_json()["error"]
        assert re.match(r"Wait (\d+ s|1 min): backups of staging are at least 1 min apart", error), error
        assert ("(BACKUP_MIN_INTERVAL_SECONDS is 60)" in error) is named
