"""Hostile audit filters: the audit page and its CSV answer 200 or 400, at any page number or calendar limit."""

from __future__ import annotations

from datetime import date
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.web.bad_input.inputs import (
    assert_page,
    fuzz,
    repeated,
    with_control,
)

pytestmark = pytest.mark.web_only  # sign-in, roles and forms: the target database is never reached

audit_value = st.one_of(st.text(max_size=40), repeated(low=100, high=3000), with_control(st.text(max_size=10)))


audit_date = st.one_of(
    audit_value,
    st.dates(min_value=date(1, 1, 2), max_value=date(9999, 12, 30)).map(
        date.isoformat
    ),  # 1-1-1, 9999-12-31: tested below
    st.sampled_from(["2025-02-30", "2025-13-01", "20250101", "2025-1-1", "\u0662\u0660\u0662\u0665-01-01"]),
)


audit_page = st.one_of(
    audit_value, st.integers(-(10**12), 10**16).map(str), st.sampled_from(["", "0", "-1", "1e3", " 2 ", "9" * 5000])
)


@fuzz(100)
@given(
    user=audit_value,
    action=audit_value,
    outcome=st.one_of(st.sampled_from(["", "ok", "failed", "refused", "rate-limited"]), audit_value),
    since=audit_date,
    until=audit_date,
    page=audit_page,
)
def test_audit_filters_answer_200_or_400(console, user, action, outcome, since, until, page):
    query = urlencode(
        {"user": user, "action": action, "outcome": outcome, "since": since, "until": until, "page": page}
    )
    assert_page(console.client.get("/audit?" + query), {200, 400})
    export = console.client.get("/audit.csv?" + query)
    assert export.status_code in (200, 400), (export.status_code, export.get_data()[:300])


def test_bug_a_huge_audit_page_number_is_not_a_500(console):
    assert_page(console.client.get("/audit?page=" + "9" * 20), {200, 400})


@pytest.mark.parametrize("query", ["since=0001-01-01", "until=9999-12-31"])
def test_bug_audit_dates_at_the_calendar_limits_are_not_a_500(console, query):
    for path in ("/audit", "/audit.csv"):
        response = console.client.get(f"{path}?{query}")
        assert response.status_code in (200, 400), (path, response.status_code)
