"""A restore test's report proves a backup restorable only when it is ours.

Anyone who can write to the bucket can put `X.dump.verified.json` beside a backup. Where the
console claims proof (each target's "proven restorable" backup: the overview, /api/targets,
`targets list`; the metrics' last-verified time), a report counts only when it is signed with
the console's key and names that file and the sha256 of its trusted manifest. Each planted
report below is one a bucket writer can make: unsigned, signed by another key, a real report
copied beside another backup, one of an earlier object under the same name.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from app.domain import provenance
from app.domain.naming import backup_filename
from tests.health.test_metrics import TOKEN, ours, scrape
from tests.helpers import IST, backup_run_in_process, put_signed_backup, run_jobs_for, signed_in, storage_of

GAUGE = "pgconsole_backup_last_verified_timestamp_seconds"


@pytest.fixture
def console(make_app, monkeypatch):
    from app.health import metrics

    monkeypatch.setattr(metrics, "STORE_CACHE_SECONDS", 0.0)  # each scrape reads the store again
    return make_app(METRICS_TOKEN=TOKEN)


def claimed_proof(app, client) -> tuple[str | None, str | None, float]:
    """(the proven backup /api/targets names, its time, the metrics' last-verified time), read afresh."""
    from app import services
    from app.services.listing_cache import listing_changed

    with app.app_context():  # a report was written behind the console's back: forget the shared listing
        listing_changed(services.settings(), services.redis())
    [status] = client.get("/api/targets").get_json()
    return status["proven_restorable"], status["proven_at"], scrape(app)[(GAUGE, ours())]


def plant(app, filename: str, report: dict) -> None:
    storage_of(app).put_bytes(filename + ".verified.json", json.dumps(report).encode())


def verify(app, client, auth, filename: str) -> dict:
    """A real restore test, asked for on the page and run by a worker; the report it stored."""
    answer = client.post(f"/backups/{filename}/verify", data={"csrf_token": auth.csrf_token("/")})
    assert answer.status_code == 303
    run_jobs_for(app)
    return json.loads(storage_of(app).get_bytes(filename + ".verified.json"))


def test_a_planted_report_proves_nothing(console, make_user):
    made = backup_run_in_process(console)["result"]
    name, sha256 = made["filename"], made["sha256"]
    other = backup_filename("pharmatracker", "staging", datetime.now(UTC) - timedelta(days=1), IST)
    put_signed_backup(console, other, b"other")  # another trusted backup, as a team's console writes it
    client, _ = signed_in(console, make_user, "viewer", "vera")
    key = console.config["SETTINGS"].signing_key
    now = datetime.now(UTC).isoformat()
    planted = {
        "unsigned": {"filename": name, "sha256": sha256, "verified_at": now, "trusted": True},
        "signed by another key": provenance.sign({"filename": name, "sha256": sha256}, b"not-the-key" * 3),
        "signed, for another file": provenance.sign(
            {"filename": other, "sha256": hashlib.sha256(b"other").hexdigest(), "verified_at": now}, key
        ),
        "signed, for an earlier object of this name": provenance.sign(
            {"filename": name, "sha256": "0" * 64, "verified_at": now}, key
        ),
        "signature of another report": {"filename": name, "sha256": sha256, "verified_at": now,
                                        "signature": provenance.sign({"filename": name}, key)["signature"]},
    }  # fmt: skip
    for words, report in planted.items():
        plant(console, name, report)
        assert claimed_proof(console, client) == (None, None, 0.0), words


def test_a_real_restore_test_proves_and_its_report_copied_beside_a_newer_backup_does_not(console, make_user):
    made = backup_run_in_process(console)["result"]["filename"]
    operator, auth = signed_in(console, make_user, "operator", "olga")
    report = verify(console, operator, auth, made)
    assert provenance.signed_with(report, console.config["SETTINGS"].signing_key)
    proven, at, gauge = claimed_proof(console, operator)
    assert proven == made and at is not None and gauge == datetime.fromisoformat(at).timestamp() > 0

    newer = backup_filename("pharmatracker", "staging", datetime.now(UTC) + timedelta(seconds=30), IST)
    put_signed_backup(console, newer, b"newer")  # trusted, newer than `made`, never restore-tested
    storage = storage_of(console)
    storage.put_bytes(newer + ".verified.json", storage.get_bytes(made + ".verified.json"))  # a real report, copied
    proven, _, gauge_now = claimed_proof(console, operator)
    assert proven == made  # still the backup the report is about
    assert gauge_now == gauge  # the copy is not the latest proof either
