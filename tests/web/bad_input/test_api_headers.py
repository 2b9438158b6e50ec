"""The API under wrong methods and malformed Authorization headers: 405 and 401, never a 500."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.web.bad_input.inputs import (
    PASSKEY,
    assert_api_error,
    fuzz,
    repeated,
)

pytestmark = pytest.mark.web_only  # sign-in, roles and forms: the target database is never reached

API_ROUTES = {
    "/api/setting/backup": {"POST"},
    "/api/setting/backups": {"GET", "HEAD", "OPTIONS"},
    "/api/setting/restore": {"POST"},
    "/api/jobs/0123456789abcdef": {"GET", "HEAD", "OPTIONS"},
}


@pytest.mark.parametrize("path", sorted(API_ROUTES))
def test_api_routes_answer_wrong_methods_with_405(console, path):
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "PROPFIND", "TRACE", "X-WHATEVER"):
        if method in API_ROUTES[path]:
            continue
        for headers in (console.headers, {}):
            response = console.api.open(path, method=method, headers=headers, json={"filename": "x"})
            assert_api_error(response, {405})
    assert console.queued() == 0


@fuzz(100)
@given(
    header=st.one_of(
        st.sampled_from(["Bearer", "Bearer ", "Bearer  ", "bearer", "Basic xxx", "Basic YWRhOnB3", "Token abc", ""]),
        st.builds(lambda t: "Bearer " + t, st.text(max_size=80)),
        st.builds(lambda t: "Bearer " + t, repeated(st.sampled_from("aZ9_-"), low=10_000, high=10_240)),
        st.text(max_size=80),
    ),
    as_server_sends_it=st.booleans(),
)
@example(header="Bearer \u2603\u00e9", as_server_sends_it=True)
def test_malformed_authorization_headers_are_401(console, header, as_server_sends_it):
    header = header.replace("\r", "").replace("\n", "")
    if as_server_sends_it:  # a real server hands the app the header's UTF-8 bytes decoded as Latin-1
        header = header.encode("utf-8", "replace").decode("latin-1")
    for path in ("/api/setting/backups", "/api/jobs/0123456789abcdef"):
        assert_api_error(console.api.get(path, headers={"Authorization": header}), {401})
    for path in ("/api/setting/restore", "/api/setting/backup"):
        body = {"filename": "x.dump", "passkey": PASSKEY}
        response = console.api.post(path, headers={"Authorization": header}, json=body)
        assert_api_error(response, {401})
    assert console.queued() == 0


@pytest.mark.parametrize("path", ["/api/setting/restore", "/api/setting/backup"])
def test_bug_a_post_with_a_bad_token_is_401(console, path):
    for header in ("Bearer pgc_wrong", "Bearer", "Basic YWRhOnB3"):
        response = console.api.post(path, headers={"Authorization": header}, json={"filename": "x", "passkey": "y"})
        assert_api_error(response, {401})  # was 400 "The CSRF token is missing."
