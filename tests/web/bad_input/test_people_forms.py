"""Hostile people forms: adding a user and issuing a token answer 4xx or the page, and store only clean names."""

from __future__ import annotations

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from tests.web.bad_input.inputs import (
    ROLES,
    assert_page,
    form_text,
    fuzz,
    mostly,
    post_form,
)

pytestmark = pytest.mark.web_only  # sign-in, roles and forms: the target database is never reached


@fuzz(80)
@given(
    username=mostly(
        st.builds(
            lambda before, core, after: before + core + after,  # surrounding blanks are stripped
            st.sampled_from(["", " ", "\t", "\u3000"]),
            st.from_regex(r"[a-z0-9_.@-]{3,12}", fullmatch=True),
            st.sampled_from(["", " ", "\n"]),
        ),
        st.one_of(form_text, st.sampled_from(["ada", "a b", "a\u200bb", "x" * 65])),
    ),
    role=mostly(st.sampled_from(ROLES), st.one_of(st.text(max_size=12), st.sampled_from(["Admin", "root", ""]))),
    # A non-empty, all-blank password is pinned by test_bug_a_blank_password_is_a_400 below.
    password=mostly(st.sampled_from(["", "a long enough password"]), form_text).filter(lambda p: not p or p.strip()),
)
def test_add_user_form_answers_303_200_or_400_and_creates_only_clean_names(console, username, role, password):
    from app.extensions import db
    from app.store.models import User

    with console.app.app_context():
        before = {u.username for u in db.session.execute(db.select(User)).scalars()}
    allowed = {303, 400} if password else {200, 400}  # no password: the page shows a set-password link
    data = {"username": username, "role": role, "password": password, "csrf_token": console.csrf}
    response = post_form(console.client, "/users", data, allowed)
    with console.app.app_context():
        after = {u.username: u.role for u in db.session.execute(db.select(User)).scalars()}
    added = set(after) - before
    event(f"status {response.status_code}")
    if response.status_code >= 400:
        assert not added
        return
    assert added == {username.strip()}, added
    (name,) = added
    assert 0 < len(name) <= 64 and not any(c.isspace() or not c.isprintable() for c in name), repr(name)
    assert after[name] == role in ROLES


@fuzz(60)
@given(
    name=st.one_of(st.text(max_size=100), st.just("ci")),
    role=st.one_of(st.sampled_from(ROLES), st.text(max_size=12)),
    expires=st.one_of(
        st.integers(-(10**30), 10**30).map(str), st.text(max_size=12), st.sampled_from(["", "0", "1", "3650", "3651"])
    ),
)
def test_token_form_answers_200_or_400(console, name, role, expires):
    data = {"token-name": name, "token-role": role, "token-expires_days": expires, "token-submit": "Create token"}
    response = post_form(console.client, "/account", {**data, "csrf_token": console.csrf}, {200, 400})
    assert_page(response, {200, 400})


@pytest.mark.parametrize("password", [" ", "\r" * 300])
def test_bug_a_blank_password_is_a_400(console, password):
    data = {"username": "bob", "role": "viewer", "password": password, "csrf_token": console.csrf}
    assert console.client.post("/users", data=data).status_code == 400  # was 500 (PeopleError)
