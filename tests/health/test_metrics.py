"""/metrics: Prometheus' text format behind METRICS_TOKEN, with values read from the store, Redis
and the console store at scrape time (parsed with prometheus_client's own parser)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.domain.catalog import read_manifest
from app.domain.trends import manifest_seconds
from tests.helpers import job_of, run_jobs_for
from tests.support.processes import free_port

TOKEN = "metrics-token-for-the-test-7731"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def scrape(app) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of one scrape."""
    response = app.test_client().get("/metrics", headers=BEARER)
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def ours(**extra: str) -> tuple:
    return tuple(sorted({"target": "staging", "environment": "staging", **extra}.items()))


def run_jobs_in(app) -> None:
    from app.jobs import runtime

    try:
        run_jobs_for(app)
    finally:
        runtime.configure(None)


def start(app, kind: str, **options) -> str:
    from app.jobs.queue import start_job
    from app.services import redis, settings

    with app.app_context():
        return start_job(settings(), redis(), kind, "olga", **options)


@pytest.mark.web_only  # refused before anything is read
def test_without_a_token_configured_metrics_do_not_exist(app):
    assert app.test_client().get("/metrics").status_code == 404
    assert app.test_client().get("/metrics", headers=BEARER).status_code == 404


@pytest.mark.web_only  # refused before anything is read
@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer "])
def test_a_missing_or_wrong_token_is_401(make_app, header):
    app = make_app(METRICS_TOKEN=TOKEN)
    response = app.test_client().get("/metrics", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "pgconsole_" not in response.get_data(as_text=True)


def test_metric_values_match_a_backup_a_failed_backup_and_a_verify(make_app, app_env, monkeypatch):
    from app.health import metrics
    from app.services import storage

    app = make_app(METRICS_TOKEN=TOKEN)
    before = scrape(app)
    assert before[("pgconsole_backups_stored", ours())] == 0
    assert before[("pgconsole_backup_last_success_timestamp_seconds", ours())] == 0
    assert ("pgconsole_backup_last_size_bytes", ours()) not in before

    good = start(app, "backup")
    run_jobs_in(app)
    result = job_of(app, good)["result"]
    # The same console with its database gone: this backup fails (same Redis namespace and store).
    dbname = app_env["DATABASE_URL"].rsplit("/", 1)[1]
    broken = make_app(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/{dbname}", METRICS_TOKEN=TOKEN)
    bad = start(broken, "backup")
    run_jobs_in(broken)
    assert job_of(broken, bad)["status"] == "failed"
    verify = start(app, "verify", filename=result["filename"], trusted_only=True)
    run_jobs_in(app)
    assert job_of(app, verify)["status"] == "finished"

    monkeypatch.setattr(metrics, "STORE_CACHE_SECONDS", 0.0)  # the first scrape above is cached: read again
    samples = scrape(app)

    with app.app_context():
        [listed] = [b for b in metrics.operations.collaborators().backups.ours()]
        manifest = read_manifest(storage(), result["filename"])
    assert listed.filename == result["filename"]
    assert samples[("pgconsole_backups_stored", ours())] == 1
    assert samples[("pgconsole_backup_last_size_bytes", ours())] == result["size"]
    assert samples[("pgconsole_backup_last_success_timestamp_seconds", ours())] == listed.last_modified.timestamp()
    assert samples[("pgconsole_backup_last_duration_seconds", ours())] == pytest.approx(manifest_seconds(manifest))
    assert samples[("pgconsole_backup_last_verified_timestamp_seconds", ours())] == listed.verified_at.timestamp()
    assert samples[("pgconsole_jobs_total", ours(kind="backup", outcome="ok"))] == 1
    assert samples[("pgconsole_jobs_total", ours(kind="backup", outcome="failed"))] == 1
    assert samples[("pgconsole_jobs_total", ours(kind="verify", outcome="ok"))] == 1
    assert samples[("pgconsole_jobs_total", ours(kind="restore", outcome="ok"))] == 0  # there from the start
    assert samples[("pgconsole_jobs_running", ours())] == 0
    assert samples[("pgconsole_queue_length", ours())] == 0
    assert samples[("pgconsole_scheduler_up", ours())] == 0
    for component in ("redis", "storage", "database", "console_store"):
        assert samples[("pgconsole_up", ours(component=component))] == 1
    # The broken console's view: its database is down, the rest answers.
    assert scrape(broken)[("pgconsole_up", ours(component="database"))] == 0


def test_the_store_listing_is_cached_between_scrapes(make_app):
    app = make_app(METRICS_TOKEN=TOKEN)
    assert scrape(app)[("pgconsole_backups_stored", ours())] == 0
    start(app, "backup")
    run_jobs_in(app)

    assert scrape(app)[("pgconsole_backups_stored", ours())] == 0  # within 30 s: the cached listing
    samples = scrape(app)
    assert samples[("pgconsole_jobs_total", ours(kind="backup", outcome="ok"))] == 1  # Redis is read every time
    assert samples[("pgconsole_queue_length", ours())] == 0


def test_a_queued_job_shows_in_the_queue_length(make_app):
    app = make_app(METRICS_TOKEN=TOKEN)
    start(app, "backup")
    assert scrape(app)[("pgconsole_queue_length", ours())] == 1
    run_jobs_in(app)
    assert scrape(app)[("pgconsole_queue_length", ours())] == 0
