"""Hostile path segments and page forms on a backup: always a 4xx or the page, never a 500, nothing enqueued."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from app.adapters.storage import check_name
from tests.web.bad_input.inputs import (
    HEADER_VALUE,
    NO_SURROGATE,
    PASSKEY,
    assert_api_error,
    assert_page,
    form_text,
    fuzz,
    hostile_text,
    passkeys,
    post_form,
)

pytestmark = pytest.mark.web_only  # sign-in, roles and forms: the target database is never reached


@fuzz(80)
@given(st.one_of(hostile_text, st.text(NO_SURROGATE, max_size=80)))
@example("")
@example("a//b.dump")
@example("x.dump/")
def test_page_routes_with_hostile_names_are_4xx(console, stored, name):
    segment = quote(name, safe="")
    data = {"csrf_token": console.csrf, "passkey": PASSKEY, "confirm": "x", "note": "n"}
    calls = [
        ("GET", f"/backups/{segment}/restore"),
        ("POST", f"/backups/{segment}/restore"),
        ("GET", f"/backups/{segment}/download"),
        ("POST", f"/backups/{segment}/pin"),
        ("POST", f"/backups/{segment}/unpin"),
        ("POST", f"/backups/{segment}/verify"),
        ("GET", f"/jobs/{segment}"),
    ]
    for method, url in calls:
        response = console.client.open(url, method=method, data=data if method == "POST" else None)
        response.close()
        if response.status_code == 308:  # the router merging "//": it stays on this site
            assert "//" in f"/{name}/", url
            assert urlsplit(response.headers["Location"]).netloc in ("", "localhost"), url
            continue
        assert_page(response, {400, 403, 404})
    api = console.api.get(f"/api/jobs/{segment}", headers=console.headers)
    if api.status_code == 308:
        assert urlsplit(api.headers["Location"]).netloc in ("", "localhost")
    else:
        assert_api_error(api, {404})
    assert console.queued() == 0


@fuzz(60)
@given(passkey=passkeys, confirm=form_text)
def test_restore_page_form_on_a_listed_backup_enqueues_nothing(console, stored, target_db, passkey, confirm):
    console.reset_limits()
    for typed in (confirm, target_db):
        data = {"passkey": passkey, "confirm": typed, "csrf_token": console.csrf}
        post_form(console.client, f"/backups/{stored['old']}/restore", data, {400, 403, 409, 429})
    assert console.queued() == 0


@fuzz(40)
@given(note=form_text)
def test_pin_note_answers_303_or_400(console, stored, note):
    post_form(console.client, f"/backups/{stored['old']}/pin", {"note": note, "csrf_token": console.csrf}, {303, 400})
    assert_page(console.client.get("/"), {200})


def test_bug_one_odd_name_in_the_bucket_does_not_break_the_listing(console):
    odd = "x-staging-on-0001-01-01-at-12-00-00-AM-LMT.dump"  # any writer to the shared bucket may leave one
    assert check_name(odd) == odd
    console.storage().put_bytes(odd, b"x")
    assert console.api.get("/api/setting/backups", headers=console.headers).status_code == 200
    assert console.client.get("/").status_code == 200


def test_bug_downloading_a_non_latin1_name_sends_a_valid_header(console):
    name = "caf\u00e9-\u2603.dump"  # check_name accepts it; the bucket is shared with other writers
    console.storage().put_bytes(name, b"x")
    response = console.client.get(f"/backups/{quote(name, safe='')}/download")
    response.get_data()
    response.close()
    assert response.status_code == 200
    assert HEADER_VALUE.fullmatch(response.headers["Content-Disposition"])
