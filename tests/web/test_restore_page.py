"""The restore page explains itself: refusals at the top, what protects the current data, another
environment's backup, the passkey; and the quick start shows the passkey once."""

from __future__ import annotations

import re

import pytest

from tests.helpers import PASSKEY, old_backups, post, signed_in


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.mark.web_only
def test_another_environments_backup_warns_and_asks_for_environment_and_database(app, make_user, target_db):
    (foreign,) = old_backups(app, [1], env="development")
    client, auth = signed_in(app, make_user, "admin", "ada")
    page = client.get(f"/backups/{foreign}/restore").get_data(as_text=True)
    callout = re.search(r'<div class="callout callout-danger" id="other-environment" role="note">(.*?)</div>', page,
                        re.S)  # fmt: skip
    assert callout, page
    words = text_of(callout[1])
    assert "This backup comes from another environment." in words
    assert f"taken in development ; restoring it replaces the data of staging ( {target_db} )" in words
    assert f"Type development/{target_db} to confirm" in page

    refused = post(client, auth, f"/backups/{foreign}/restore", {"passkey": PASSKEY, "confirm": target_db},
                   page=f"/backups/{foreign}/restore")  # fmt: skip
    assert refused.status_code == 400
    summary = re.search(r'<div class="error-summary" id="error-summary" role="alert" tabindex="-1" autofocus.*?</div>',
                        refused.get_data(as_text=True), re.S)  # fmt: skip
    assert summary and f"Type the environment and database exactly: development/{target_db}" in summary[0]
    assert 'href="#confirm"' in summary[0]


@pytest.mark.web_only
def test_an_own_backup_needs_only_the_database_name_and_the_page_counts_passkey_tries(app, make_user, target_db):
    (own,) = old_backups(app, [1])
    client, auth = signed_in(app, make_user, "admin", "ada")
    page = client.get(f"/backups/{own}/restore").get_data(as_text=True)
    assert "other-environment" not in page and f"Type {target_db} to confirm" in page
    button = re.search(r'<input [^>]*id="submit"[^>]*>', page)[0]
    assert " disabled " not in button  # a day-old backup restores: nothing has to be made first
    for left in (4, 3):
        post(client, auth, f"/backups/{own}/restore", {"passkey": "wrong", "confirm": target_db},
             page=f"/backups/{own}/restore")  # fmt: skip
        assert f"{left} tries left" in client.get(f"/backups/{own}/restore").get_data(as_text=True)


def test_the_page_says_what_protects_the_current_data_and_asks_for_no_backup_first(app, make_user, target_db):
    (own,) = old_backups(app, [1])
    client, _ = signed_in(app, make_user, "admin", "ada")
    page = client.get(f"/backups/{own}/restore").get_data(as_text=True)
    words = text_of(re.search(r'<p id="safety-how">(.*?)</p>', page, re.S)[1])
    assert words.startswith("You do not need to make a backup first.")
    assert f"At the swap, {target_db} is set aside" in words and "every write made up to that moment" in words
    assert "safety backup" in words and '"Undo"' in words and "the database is kept" in words
    assert "Create safety backup" not in page and "valid-until" not in page


def test_the_quick_start_prints_the_new_passkey_once(tmp_path, capsys, monkeypatch):
    from app.cli.quickstart import load_or_create_secrets

    monkeypatch.delenv("RESTORE_PASSKEY", raising=False)
    made = load_or_create_secrets(tmp_path / "quickstart.env")
    first = capsys.readouterr().out
    assert "restore passkey" in first and made["RESTORE_PASSKEY"] in first
    assert load_or_create_secrets(tmp_path / "quickstart.env") == made
    assert made["RESTORE_PASSKEY"] not in capsys.readouterr().out


@pytest.mark.web_only
def test_a_new_token_defaults_to_the_lowest_role_and_90_days(app, make_user):
    client, _ = signed_in(app, make_user, "admin", "ada")
    page = client.get("/account").get_data(as_text=True)
    assert re.search(r'<option selected value="viewer">viewer</option>', page), page
    assert re.search(r'<input [^>]*id="token-expires_days"[^>]*value="90"', page)


@pytest.mark.web_only
def test_a_wrong_passkey_is_said_at_the_passkey_field_and_linked_from_the_summary(app, make_user, target_db):
    (own,) = old_backups(app, [1])
    client, auth = signed_in(app, make_user, "admin", "ada")
    refused = post(client, auth, f"/backups/{own}/restore", {"passkey": "wrong", "confirm": target_db},
                   page=f"/backups/{own}/restore")  # fmt: skip
    assert refused.status_code == 403
    page = refused.get_data(as_text=True)
    field = re.search(r'<input [^>]*id="passkey"[^>]*>\s*<p class="field-error" id="passkey-error">([^<]*)</p>', page)
    assert field and field[1] == "Wrong passkey", page
    assert 'aria-invalid="true"' in field[0] and 'aria-describedby="passkey-error passkey-help"' in field[0]
    summary = re.search(r'<div class="error-summary".*?</div>', page, re.S)[0]
    assert '<a href="#passkey">Wrong passkey</a>' in summary


@pytest.mark.web_only
def test_the_danger_is_named_at_the_top_and_the_confirm_card_comes_next(app, make_user, target_db):
    (own,) = old_backups(app, [1])
    client, _ = signed_in(app, make_user, "admin", "ada")
    page = client.get(f"/backups/{own}/restore").get_data(as_text=True)
    danger = re.search(r'<div class="callout callout-danger restore-danger" id="restore-danger"[^>]*>(.*?)</div>',
                       page, re.S)  # fmt: skip
    assert danger, page
    words = text_of(danger[1])
    assert "This replaces a live database." in words and own in words
    assert f"the database {target_db} in the staging environment" in words
    order = [page.index(marker) for marker in ('id="restore-danger"', 'id="confirm-card"', 'id="what"')]
    assert order == sorted(order)
    assert '<fieldset class="plain"' in page
