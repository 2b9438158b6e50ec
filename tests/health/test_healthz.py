"""/healthz: up, what is down by name, and to anyone only a short-cached answer that names no backup."""

from __future__ import annotations

import pytest


def test_healthz_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"redis": "ok", "storage": "ok", "database": "ok", "console_store": "ok"}


def test_healthz_names_what_is_down(make_app, free_redis_port):
    app = make_app(
        REDIS_URL=f"redis://127.0.0.1:{free_redis_port}/0",
        DATABASE_URL="postgresql://postgres@127.0.0.1:5432/pgct_absent_db",
    )
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert set(body["down"]) == {"redis", "database"}
    assert body["checks"]["storage"] == "ok"
    assert "postgresql://" not in response.get_data(as_text=True)


@pytest.fixture
def free_redis_port():
    from tests.support.processes import free_port

    return free_port()


def test_anonymous_healthz_lists_nothing_and_answers_from_a_short_cache(make_app, make_user, token_for, target_db,
                                                                         pg_admin, monkeypatch):  # fmt: skip
    """Anyone can reach /healthz: it must not cost a bucket listing or name a backup file."""
    from app.web.health import views as health
    from tests.helpers import backup_run_in_process
    from tests.support.databases import drop_database

    app = make_app()
    filename = backup_run_in_process(app)["result"]["filename"]
    make_user("vic", "viewer")
    headers = token_for("vic")
    anonymous = app.test_client()

    first = anonymous.get("/healthz")
    assert first.status_code == 200 and "newest_backup" not in first.get_json()
    assert filename not in first.get_data(as_text=True) and app.config["SETTINGS"].app_name not in first.get_data(
        as_text=True
    )
    detailed = anonymous.get("/healthz", headers=headers).get_json()
    assert detailed["newest_backup"]["filename"] == filename

    drop_database(pg_admin, target_db)  # the target goes away: a fresh check sees it at once
    assert anonymous.get("/healthz", headers=headers).get_json()["down"] == ["database"]
    assert anonymous.get("/healthz").status_code == 200  # the anonymous answer is the cached one…
    monkeypatch.setattr(health, "CACHE_SECONDS", 0.0)
    stale = anonymous.get("/healthz")  # …until it is older than CACHE_SECONDS
    assert stale.status_code == 503 and stale.get_json()["down"] == ["database"]
