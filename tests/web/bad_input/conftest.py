"""Fixtures of the bad-input tests: a console signed in as an admin with a token, and a bucket with a few backups."""

from __future__ import annotations

import pytest
import redis as redis_lib

from tests.helpers import AuthActions
from tests.web.bad_input.inputs import (
    Console,
    now_name,
)


@pytest.fixture
def console(app, make_user, token_for):
    app.config["PROPAGATE_EXCEPTIONS"] = False  # a crash answers 500, as in production
    make_user("ada", "admin")
    headers = token_for("ada")
    client = app.test_client()
    auth = AuthActions(client)
    assert auth.login("ada").status_code == 302
    redis = redis_lib.Redis.from_url(app.config["SETTINGS"].redis_url)
    yield Console(app, client, app.test_client(), headers, redis, auth.csrf_token("/"))
    redis.close()


@pytest.fixture
def stored(console):
    """What the bucket holds: an old backup of this environment, a fresh one of another, a foreign file.

    The database's lock is held as if a job ran, so even the right passkey and name can never get a
    restore enqueued (409): whatever a test sends, the queue must stay empty.
    """
    from app.jobs.locks import DatabaseLock

    settings = console.app.config["SETTINGS"]
    DatabaseLock(console.redis, settings.redis_namespace, settings.lock_name).acquire("a-running-job", 3600)
    names = {
        "old": now_name("staging", minutes_ago=120),
        "other_env": now_name("production", minutes_ago=1),
        "foreign": "notes.txt",
    }
    storage = console.storage()
    for name in names.values():
        storage.put_bytes(name, b"not really an archive")
    storage.put_bytes(names["old"] + ".json", b"{}")
    return names
