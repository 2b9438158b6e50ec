"""Alerts sent as things happen: a failed backup, a stale last backup, and a backup far smaller than the last."""

from __future__ import annotations

import re

import psycopg

from tests.helpers import backup_run_in_process, old_backups, run_jobs_for, signed_in
from tests.support.databases import PG


def events(received: list[dict]) -> list[str]:
    """The event of each message the webhook got (its "event: …" line; the old webhook reads "text")."""
    return [re.search(r"^event: (\S+)$", r["text"], re.M).group(1) for r in received]


def test_a_failed_backup_is_sent_to_the_webhook(make_app, webhook, pg_admin, target_db):
    url, received = webhook
    pg_admin.execute('CREATE ROLE "pgct_nobody_hook" LOGIN')
    try:
        app = make_app(ALERT_WEBHOOK_URL=url, DATABASE_URL=f"postgresql://pgct_nobody_hook@127.0.0.1:5432/{target_db}")
        status = backup_run_in_process(app)
    finally:
        pg_admin.execute('DROP ROLE "pgct_nobody_hook"')
    assert status["status"] == "failed"
    assert events(received) == ["backup-failed"]
    assert received[0]["title"].startswith("[pgconsole staging]") and "permission denied" in received[0]["text"]


def test_the_stale_backup_alert_fires_once(make_app, webhook, redis_server):
    from app.jobs import runtime
    from app.scheduler import check_stale_backups

    url, received = webhook
    app = make_app(ALERT_WEBHOOK_URL=url, BACKUP_MAX_AGE_HOURS="24")
    old_backups(app, [2])
    settings = app.config["SETTINGS"]
    runtime.configure(app)
    assert check_stale_backups(settings, redis_server) is True
    redis_server.delete(f"{settings.redis_namespace}:scheduler:stale-check")
    assert check_stale_backups(settings, redis_server) is False  # not again within the period
    run_jobs_for(app)  # the alert is delivered by a worker
    assert events(received) == ["stale-backup"]
    runtime.configure(None)


def test_a_backup_made_after_most_rows_were_deleted_is_flagged(make_app, webhook, make_user, target_db):
    url, received = webhook
    app = make_app(ALERT_WEBHOOK_URL=url)
    with psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True) as conn:
        conn.execute("INSERT INTO orders (customer_id, note) SELECT 1, repeat(md5(g::text), 20) "
                     "FROM generate_series(1, 20000) g")  # fmt: skip
    for _ in range(3):
        assert backup_run_in_process(app)["status"] == "finished"
    with psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True) as conn:
        conn.execute("DELETE FROM orders WHERE id > 100")
    status = backup_run_in_process(app)
    assert "possible data loss" in status["warning"]
    assert events(received) == ["size-drop"]
    client, _ = signed_in(app, make_user, "viewer", "vic")
    page = client.get("/").get_data(as_text=True)
    assert "size dropped" in page and f'Possible data loss: <span class="filename">{status["filename"]}' in page
    assert 'role="img"' in page  # the trend chart
