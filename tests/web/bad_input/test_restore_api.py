"""Hostile restore requests to the API: any JSON, raw bodies, names and passkeys get a JSON 4xx, nothing enqueued."""

from __future__ import annotations

import json

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from tests.web.bad_input.inputs import (
    NO_SURROGATE,
    assert_api_error,
    filenames,
    fuzz,
    json_values,
    passkeys,
)

pytestmark = pytest.mark.web_only  # sign-in, roles and forms: the target database is never reached


# --------------------------------------------------------------------------- strategies


# --------------------------------------------------------------------------- the console under test


# --------------------------------------------------------------------------- naming: parse and check


# --------------------------------------------------------------------------- POST /api/setting/restore


@fuzz(150)
@given(
    body=st.one_of(
        json_values,
        st.fixed_dictionaries({"filename": json_values, "passkey": json_values}),
        st.fixed_dictionaries(
            {"filename": json_values, "passkey": json_values},
            optional={"database": json_values, "target": json_values, "dbname": json_values, "url": json_values},
        ),
    )
)
def test_restore_api_answers_any_json_with_a_json_error(console, stored, body):
    response = console.api.post("/api/setting/restore", headers=console.headers, json=body)
    assert_api_error(response)
    assert console.queued() == 0


wrong_types = st.one_of(
    st.integers(), st.floats(), st.booleans(), st.none(), st.lists(st.text(max_size=5), max_size=2), st.just({})
)


@fuzz(200)
@given(
    data=st.data(),
    fresh_limit=st.booleans(),
    mistype=st.sampled_from([None, None, None, None, None, "filename", "passkey"]),
)
def test_restore_api_refuses_hostile_names_and_passkeys(console, stored, data, fresh_limit, mistype):
    if fresh_limit:
        console.reset_limits()  # otherwise five wrong passkeys make every later answer a 429
    body = {"filename": data.draw(filenames(stored), "filename"), "passkey": data.draw(passkeys, "passkey")}
    if mistype:
        body[mistype] = data.draw(wrong_types, mistype)
    response = console.api.post("/api/setting/restore", headers=console.headers, json=body)
    event(f"status {response.status_code}")
    assert_api_error(response)
    if isinstance(body["filename"], str) and body["filename"] not in stored.values():
        assert response.status_code in (400, 404, 413), "a name that is not listed is never looked at further"
    assert console.queued() == 0


@fuzz(120)
@given(
    raw=st.one_of(
        st.binary(max_size=2000),
        st.text(NO_SURROGATE, max_size=300).map(str.encode),
        st.sampled_from(
            [b"", b"{", b"null", b"[]", b"\xff\xfe{\x00}", b'{"filename": "x.dump", "passkey": "y"', b"1" * 5000]
        ),
    ),
    oversize=st.one_of(st.none(), st.integers(64 * 1024 - 15, 70_000)),  # pad the body past MAX_CONTENT_LENGTH
    content_type=st.sampled_from(
        ["application/json", "application/json; charset=utf-8", "application/json; charset=latin-9", "text/plain"]
    ),
)
def test_restore_api_answers_raw_bodies_with_a_json_error(console, stored, raw, oversize, content_type):
    if oversize:
        raw = b'{"filename": "' + b"a" * oversize + b'"}'
    response = console.api.post(
        "/api/setting/restore", headers={**console.headers, "Content-Type": content_type}, data=raw
    )
    assert_api_error(response)
    if len(raw) > 64 * 1024 and content_type.startswith("application/json"):
        assert response.status_code == 413
    assert console.queued() == 0


def test_restore_api_with_restore_disabled_answers_503_or_400(console, stored, make_app):
    disabled = make_app(RESTORE_PASSKEY="")  # the same console store: ada's token works here too
    disabled.config["PROPAGATE_EXCEPTIONS"] = False
    api = disabled.test_client()

    @fuzz(40)
    @given(filename=st.one_of(filenames(stored), wrong_types), passkey=st.one_of(passkeys, wrong_types))
    def check(filename, passkey):
        response = api.post(
            "/api/setting/restore", headers=console.headers, json={"filename": filename, "passkey": passkey}
        )
        assert_api_error(response, {400, 413, 503})  # 413: control characters escape to 6 bytes each
        assert console.queued() == 0

    check()


# --------------------------------------------------------------------------- pages with hostile path segments


# --------------------------------------------------------------------------- forms


# --------------------------------------------------------------------------- API methods and headers


# --------------------------------------------------------------------------- app bugs this file found


def test_bug_a_lone_surrogate_filename_is_a_4xx(console, stored):
    response = console.api.post(
        "/api/setting/restore",
        headers={**console.headers, "Content-Type": "application/json"},
        data=b'{"filename": "\\ud800.dump", "passkey": "x"}',
    )
    assert_api_error(response)


def test_bug_a_lone_surrogate_passkey_is_a_4xx(console, stored):
    body = json.dumps({"filename": stored["old"], "passkey": "\ud800"})  # ensure_ascii: sent as \ud800
    response = console.api.post(
        "/api/setting/restore", headers={**console.headers, "Content-Type": "application/json"}, data=body
    )
    assert_api_error(response, {400, 403, 429})


def test_bug_deeply_nested_json_is_a_400(console):
    response = console.api.post(
        "/api/setting/restore",
        headers={**console.headers, "Content-Type": "application/json"},
        data="[" * 2000 + "]" * 2000,  # 4 kB, far below MAX_CONTENT_LENGTH
    )
    assert_api_error(response, {400})


