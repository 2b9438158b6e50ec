"""The audit log keeps to the page's width whatever it holds: long values are cut with an ellipsis, whole
in their title and in the CSV export; on phones each card names its fields."""

from __future__ import annotations

import csv
import hashlib
import io
import re

import pytest

from tests.helpers import AuthActions, signed_in

LONG_NAME = "m" * 30 + "-a-name-someone-tried-at-sign-in-" + "z"  # 64 characters
SHA256 = hashlib.sha256(b"an archive").hexdigest()
LONG_OBJECT = "pharmatracker-staging-on-2026-12-07-at-10-30-00-PM-IST.dump"


@pytest.fixture
def long_values(app):
    """A real failed sign-in with a 64-character name, and a verify refusal whose detail holds a sha256."""
    from app.store import audit

    assert len(LONG_NAME) == 64
    stranger = AuthActions(app.test_client())
    assert stranger.login(LONG_NAME, "wrong password").status_code in (200, 401)
    with app.app_context():
        audit.record("verify", "refused", username="olga", target=LONG_OBJECT,
                     detail=f"the archive's sha256 is {SHA256}, its signed manifest says {'0' * 64}")  # fmt: skip


@pytest.mark.web_only
def test_long_values_are_cut_with_the_whole_value_in_their_title(app, make_user, long_values):
    admin, _ = signed_in(app, make_user, "admin", "ada")
    page = admin.get("/audit").text
    assert 'table class="audit"' in page and '<col class="audit-object">' in page  # fixed column widths
    assert f'<span class="clip" title="{LONG_NAME}">{LONG_NAME}</span>' in page
    assert re.search(rf'<span class="clip clip-lines" title="[^"]*{SHA256}[^"]*">', page)
    assert f'<span class="clip clip-lines" title="{LONG_OBJECT}">{LONG_OBJECT}</span>' in page  # wraps, 3 lines
    for label in ("When", "User", "Action", "Target", "Object", "Outcome", "Detail", "Job"):
        assert f'<td data-label="{label}"' in page  # phones show each field's name on its card


@pytest.mark.web_only
def test_the_csv_export_holds_every_value_whole(app, make_user, long_values):
    admin, _ = signed_in(app, make_user, "admin", "ada")
    answer = admin.get("/audit.csv")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    failed = next(r for r in rows if r["action"] == "login" and r["outcome"] == "failed")
    assert failed["user"] == LONG_NAME
    refused = next(r for r in rows if r["action"] == "verify")
    assert SHA256 in refused["detail"] and refused["target"] == LONG_OBJECT
