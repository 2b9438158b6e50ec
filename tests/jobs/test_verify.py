"""Proven restores: verify restores a backup into a scratch database and proves it, on demand and on a schedule."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from tests.helpers import backup_run_in_process, run_jobs_for, signed_in, storage_of
from tests.support.databases import database_names, table_fingerprint


def test_verify_proves_a_good_backup_and_fails_a_corrupted_one(app, make_user, target_db, pg_admin):
    filename = backup_run_in_process(app)["result"]["filename"]
    client, auth = signed_in(app, make_user)
    response = client.post(f"/backups/{filename}/verify", data={"csrf_token": auth.csrf_token("/")})
    assert response.status_code == 303
    run_jobs_for(app)
    report = json.loads(storage_of(app).get_bytes(filename + ".verified.json"))
    assert report["checksum_verified"] is True
    assert report["rows"] == {"public.customers": 2000, "public.orders": 6000}
    row = next(r for r in client.get("/").get_data(as_text=True).split("<tr") if filename in r)
    assert re.search(r'class="proven"><span class="proven-mark" aria-hidden="true">✓ </span>'
                     r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [AP]M IST</td>", row)  # fmt: skip

    live = table_fingerprint(target_db)
    storage = storage_of(app)
    data = bytearray(storage.get_bytes(filename))
    data[len(data) // 3] ^= 0xFF
    storage.put_bytes(filename, bytes(data))
    client.post(f"/backups/{filename}/verify", data={"csrf_token": auth.csrf_token("/")})
    run_jobs_for(app)
    from app.store.models import AuditEvent

    with app.app_context():
        failed = AuditEvent.query.filter_by(action="verify", outcome="failed").one()
    assert "checksum mismatch" in failed.detail
    assert table_fingerprint(target_db) == live
    assert database_names(pg_admin, f"{target_db}_pgc_%") == []


def test_a_verify_schedule_proves_the_newest_backup(make_app, redis_server):
    from app.jobs import runtime
    from app.scheduler import ConsoleScheduler, scheduled_backup, scheduled_verify

    app = make_app(VERIFY_SCHEDULE="0 3 * * *")
    settings = app.config["SETTINGS"]
    newest = backup_run_in_process(app)["result"]["filename"]
    with app.app_context():
        runtime.configure(app)
        scheduler = ConsoleScheduler(settings, redis_server, settings.redis_namespace, scheduled_backup,
                                     scheduled_verify)  # fmt: skip
        scheduler.verify_job.next_enqueue_time = datetime.now(UTC) - timedelta(seconds=1)  # its slot is due
        assert [job.name for job in scheduler.enqueue_jobs()] == ["scheduled-verify"]
    run_jobs_for(app)  # the trigger starts the verification, which runs too
    report = json.loads(storage_of(app).get_bytes(newest + ".verified.json"))
    assert report["requested_by"] == "scheduler" and report["rows"]["public.customers"] == 2000
