"""Cheap pages: a shared bucket listing, pins without a GET per row, a paged list.

The S3 requests are counted on the console's own boto3 client, with botocore's `before-send`
event: every request it sends is counted, and still goes to the real server (SeaweedFS here).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from app.domain.naming import backup_filename
from tests.helpers import IST, backup_run_in_process, put_signed_backup, run_jobs_for, signed_in, storage_of


def count_requests(app) -> Counter:
    """Counter of (HTTP method, kind) for each S3 request this app's store sends from now on."""
    seen: Counter = Counter()

    def counted(request, **_):
        path = request.url.split("?", 1)[0]
        kind = "list" if "list-type=2" in request.url else "pin" if path.endswith(".pin") else "other"
        seen[(request.method, kind)] += 1

    app.extensions["pgconsole.storage"].client.meta.events.register("before-send.s3", counted)
    return seen


def names(count: int, env: str = "staging", start_days: int = 1) -> list[str]:
    """Backup names of this console's app, one an hour apart, newest first."""
    now = datetime.now(UTC) - timedelta(days=start_days)
    return [backup_filename("pharmatracker", env, now - timedelta(hours=i), IST) for i in range(count)]


def listed_rows(page: str) -> list[str]:
    return re.findall(r'<td class="filename">([^<\s]+)', page)


@pytest.fixture
def seaweed_env(app_env, seaweedfs_bucket) -> dict[str, str]:
    return {**app_env, **seaweedfs_bucket.env}


# --------------------------------------------------------------------------- the shared listing


def test_a_second_console_reads_the_listing_from_redis_not_s3(make_app, make_user, seaweed_env, redis_server):
    """Two app instances (two gunicorn workers) share one Redis namespace: only the first lists the bucket."""
    first, second = make_app(**seaweed_env), make_app(**seaweed_env)
    stored = names(3)
    storage = storage_of(first)
    for name in stored:
        storage.put_bytes(name, b"dump")
    storage.put_bytes(stored[0] + ".pin", b'{"note": "keep"}')
    client_a, _ = signed_in(first, make_user, "viewer", "vera")
    client_b, _ = signed_in(second, make_user, "viewer", "vic")
    sent_a, sent_b = count_requests(first), count_requests(second)

    page_a = client_a.get("/").get_data(as_text=True)
    assert listed_rows(page_a) == stored and "pinned: keep" in page_a
    assert sent_a[("GET", "list")] >= 1

    listed_b = client_b.get("/api/setting/backups")
    assert [b["filename"] for b in listed_b.get_json()] == stored
    assert sum(sent_b.values()) == 0  # not a listing, not a GET: the API answered from Redis
    page_b = client_b.get("/").get_data(as_text=True)
    assert listed_rows(page_b) == stored and "pinned: keep" in page_b
    assert sent_b[("GET", "list")] == 0 and sent_b[("GET", "pin")] == 0  # the note was remembered too

    namespace = first.config["SETTINGS"].redis_namespace
    keys = [k.decode() for k in redis_server.keys(f"{namespace}:listing:*")]
    assert keys and all(k.startswith(namespace + ":") for k in keys)
    secrets = [seaweed_env[name] for name in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "SECRET_KEY")]
    for key in keys:
        value = redis_server.get(key).decode()
        assert all(secret not in value for secret in secrets)


def test_a_change_made_elsewhere_shows_when_the_listing_expires(make_app, make_user, seaweed_env):
    """The cache is real (an upload by another tool waits for it), and short (it shows a moment later)."""
    app = make_app(**seaweed_env, BACKUP_LIST_CACHE_SECONDS="2")
    client, _ = signed_in(app, make_user, "viewer", "vera")
    newer, older = names(2)
    storage_of(app).put_bytes(older, b"dump")
    assert listed_rows(client.get("/").get_data(as_text=True)) == [older]
    storage_of(app).put_bytes(newer, b"dump")  # not through the console: nothing tells the cache
    assert listed_rows(client.get("/").get_data(as_text=True)) == [older]
    time.sleep(2.2)
    assert listed_rows(client.get("/").get_data(as_text=True)) == [newer, older]


def test_pins_backups_retention_and_restore_tests_show_at_once(make_app, make_user, seaweed_env):
    app = make_app(**seaweed_env, BACKUP_LIST_CACHE_SECONDS="300", MAX_BACKUP_FILES="2")
    operator, op_auth = signed_in(app, make_user, "operator", "olga")
    admin, admin_auth = signed_in(app, make_user, "admin", "ada")
    old, oldest = names(2, start_days=3)
    for name in (oldest, old):
        put_signed_backup(app, name, b"dump")
    assert listed_rows(operator.get("/").get_data(as_text=True)) == [old, oldest]  # now cached for 300 s

    pinned = operator.post(f"/backups/{old}/pin", data={"note": "before v2", "csrf_token": op_auth.csrf_token("/")})
    assert pinned.status_code == 303
    assert "pinned: before v2" in operator.get("/").get_data(as_text=True)
    unpinned = admin.post(f"/backups/{old}/unpin", data={"csrf_token": admin_auth.csrf_token("/")})
    assert unpinned.status_code == 303
    assert "pinned" not in operator.get("/").get_data(as_text=True).split("<tbody>")[1]

    # A backup appears, and retention (keep 2) deletes the oldest: both at once.
    status = backup_run_in_process(app)
    assert status["status"] == "finished", status
    made = status["result"]["filename"]
    assert listed_rows(operator.get("/").get_data(as_text=True)) == [made, old]

    # A restore test's report shows as "proven restorable" at once.
    assert operator.get("/api/setting/backups").get_json()[0]["verifiedAt"] is None
    verified = operator.post(f"/backups/{made}/verify", data={"csrf_token": op_auth.csrf_token("/")})
    assert verified.status_code == 303
    run_jobs_for(app)
    assert operator.get("/api/setting/backups").get_json()[0]["verifiedAt"] is not None


# --------------------------------------------------------------------------- pins


def test_the_list_reads_a_pins_note_once_and_only_for_the_rows_it_shows(make_app, make_user, seaweed_env):
    app = make_app(**seaweed_env)
    stored = names(60)
    storage = storage_of(app)
    for i, name in enumerate(stored):
        storage.put_bytes(name, b"dump")
        storage.put_bytes(name + ".pin", f'{{"note": "n{i}", "pinned_by": "olga"}}'.encode())
    client, _ = signed_in(app, make_user, "viewer", "vera")
    sent = count_requests(app)

    first = client.get("/").get_data(as_text=True)
    assert "pinned: n0<" in first and "pinned: n49<" in first and "pinned: n50<" not in first
    assert sent[("GET", "pin")] == 50  # the 50 rows shown, not the 60 pins
    sent.clear()
    again = client.get("/").get_data(as_text=True)
    assert again.count('class="mark pin"') == 50 and "pinned: n49<" in again
    assert sent[("GET", "pin")] == 0
    sent.clear()
    client.get("/api/setting/backups")
    client.get("/healthz")
    assert sent[("GET", "pin")] == 0


# --------------------------------------------------------------------------- paging


def test_the_list_is_paged_by_50_with_links(app, make_user):
    stored = names(53)
    for name in stored:
        storage_of(app).put_bytes(name, b"dump")
    client, _ = signed_in(app, make_user, "viewer", "vera")

    first = client.get("/").get_data(as_text=True)
    assert listed_rows(first) == stored[:50]
    assert "Backups 1–50 of 53 (page 1 of 2)" in first
    assert re.search(r'<a rel="next" href="/\?page=2">Older backups', first) and 'rel="prev"' not in first

    second = client.get("/?page=2").get_data(as_text=True)
    assert listed_rows(second) == stored[50:]
    assert re.search(r'<a rel="prev" href="/">[^<]*Newer backups', second) and 'rel="next"' not in second
    assert len(client.get("/api/setting/backups").get_json()) == 53  # the API keeps its whole list


@pytest.mark.parametrize("asked", ["abc", "0", "-1", "", "1.5", "1e3", "9" * 5000, "%00"])
def test_a_bad_page_gives_the_first_page(app, make_user, asked):
    stored = names(51)
    for name in stored:
        storage_of(app).put_bytes(name, b"dump")
    client, _ = signed_in(app, make_user, "viewer", "vera")
    response = client.get(f"/?page={asked}")
    assert response.status_code == 200
    assert listed_rows(response.get_data(as_text=True)) == stored[:50]


def test_a_page_past_the_last_is_404(app, make_user):
    storage_of(app).put_bytes(names(1)[0], b"dump")
    client, _ = signed_in(app, make_user, "viewer", "vera")
    assert client.get("/?page=1").status_code == 200
    missing = client.get("/?page=2")
    assert missing.status_code == 404 and "there is no page 2" in missing.get_data(as_text=True)
    assert client.get("/?page=99999999999999999999").status_code == 404
