"""Hostile sign-in forms: 400, 401 or 429, and never a redirect off the site."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.helpers import PASSWORD, AuthActions
from tests.web.bad_input.inputs import (
    TRAVERSAL,
    form_text,
    fuzz,
    post_form,
)

pytestmark = pytest.mark.web_only  # sign-in, roles and forms: the target database is never reached


@fuzz(80)
@given(username=form_text, password=form_text, nul=st.booleans())
def test_login_form_answers_400_401_or_429(console, username, password, nul):
    anon = console.app.test_client()
    token = AuthActions(anon).csrf_token("/login")
    if nul:
        username, password = username + "\x00", "\x00" + password
    post_form(anon, "/login", {"username": username, "password": password, "csrf_token": token}, {400, 401, 429})
    assert console.queued() == 0


@fuzz(30)  # each example signs in: password hashing makes these the slowest requests
@given(
    target=st.one_of(st.text(max_size=60), st.sampled_from(TRAVERSAL), st.from_regex(r"[/\\ \t]{1,3}[a-z.:/]{0,12}"))
)
@example("//evil.example")
@example("/\\evil.example")
@example("/\t/evil.example")
@example("https://evil.example/")
@example("/%2F%2Fevil.example")
def test_sign_in_never_redirects_off_the_site(console, target):
    anon = console.app.test_client()
    token = AuthActions(anon).csrf_token("/login")
    response = anon.post("/login", data={"username": "ada", "password": PASSWORD, "next": target, "csrf_token": token})
    assert response.status_code == 302, response.get_data()[:300]
    location = response.headers["Location"]
    parts = urlsplit(location)
    assert not parts.scheme and not parts.netloc, location
    assert location.startswith("/") and not location.startswith(("//", "/\\")), location
