"""Prometheus metrics (prometheus_client), computed when /metrics is scraped.

Nothing is counted in the process: every value is read at scrape time from the backup store,
Redis and the console store, so each gunicorn worker gives the same answer and no
multiprocess directory is needed. The store listing (and the newest backup's manifest) is
cached for `STORE_CACHE_SECONDS`, so a scrape every 15 s does not list the bucket each time.

Every metric is labelled by target and environment (`target_name`); with several targets each
family has one series per target. The queue and scheduler gauges are the console's, shared by
its targets, and repeated on each target's labels.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from flask import current_app
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app import operations, services
from app.domain.catalog import Backup, read_manifest
from app.domain.console import ConsoleBackups
from app.domain.trends import manifest_seconds
from app.health.status import COMPONENTS, check_name, component_checks
from app.jobs.queue import JOB_KINDS, job_counts, queue_for
from app.scheduler import scheduler_alive

STORE_CACHE_SECONDS = 30.0
LABELS = ["target", "environment"]


@dataclass(frozen=True)
class StoreView:
    """What the metrics need from the store: our backups (newest first), the newest one's duration and the
    backup whose restore test last proved it restorable."""

    ours: list[Backup]
    newest: Backup | None
    newest_seconds: float | None
    last_proven: Backup | None = None


def read_store(backups: ConsoleBackups) -> StoreView:
    listed = backups.listing()
    newest = backups.newest(listed)
    manifest = read_manifest(backups.storage, newest.filename) if newest and newest.has_manifest else None
    ours = backups.ours(listed)
    # The latest listed report first, checked (signature, file, sha256) until one holds: a planted
    # .verified.json must not make a backup look proven, and a scrape reads one report, not all.
    reported = sorted((b for b in ours if b.verified_at is not None), key=lambda b: b.verified_at, reverse=True)
    last_proven = next((b for b in reported if backups.proven(b)), None)
    return StoreView(ours, newest, manifest_seconds(manifest), last_proven)


class _StoreCache:
    """The last store view, at most STORE_CACHE_SECONDS old; one refresh at a time per process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.view: StoreView | None = None
        self.at = 0.0

    def get(self, backups: ConsoleBackups) -> StoreView:
        with self.lock:
            if self.view is None or time.monotonic() - self.at > STORE_CACHE_SECONDS:
                self.view, self.at = read_store(backups), time.monotonic()
            return self.view


class ConsoleCollector(Collector):
    """Reads this app's stores, Redis and console store when collected (needs an app context)."""

    def __init__(self) -> None:
        self.stores: dict[str | None, _StoreCache] = {}

    def collect(self) -> Iterator[Metric]:
        checks = component_checks()
        families: dict[str, Metric] = {}
        for target in [t.name for t in services.console_settings().targets] or [None]:
            with services.acting_on(target):
                for family in self._collect_target(target, checks):
                    if family.name in families:  # one family, one series per target
                        families[family.name].samples.extend(family.samples)
                    else:
                        families[family.name] = family
        yield from families.values()

    def _collect_target(self, target: str | None, checks: dict[str, str]) -> Iterator[Metric]:
        settings = services.settings()
        labels = [services.target_name(settings), settings.app_env]
        try:
            view: StoreView | None = self.stores.setdefault(target, _StoreCache()).get(
                operations.collaborators().backups)
        except Exception:  # noqa: BLE001 - the store being down is pgconsole_up{component="storage"} 0
            view = None
        yield from _store_metrics(view, labels)
        if checks["redis"] == "ok":
            yield from _redis_metrics(labels)
        up = GaugeMetricFamily("pgconsole_up", "Whether a part of the console answers (1) or not (0).",
                               labels=[*LABELS, "component"])  # fmt: skip
        for component in COMPONENTS:
            answers = checks[check_name(component, target)] == "ok" and (component != "storage" or view is not None)
            up.add_metric([*labels, component], 1.0 if answers else 0.0)
        yield up


def _gauge(name: str, documentation: str, labels: list[str], value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=LABELS)
    family.add_metric(labels, value)
    return family


def _store_metrics(view: StoreView | None, labels: list[str]) -> Iterator[Metric]:
    if view is None:
        return
    newest = view.newest
    yield _gauge("pgconsole_backups_stored", "Backups of this target and environment in the store.", labels,
                 len(view.ours))  # fmt: skip
    yield _gauge("pgconsole_backup_last_success_timestamp_seconds",
                 "When the newest backup was completed (Unix time; 0 when there is none).", labels,
                 newest.last_modified.timestamp() if newest else 0.0)  # fmt: skip
    proven = view.last_proven.verified_at if view.last_proven else None
    yield _gauge("pgconsole_backup_last_verified_timestamp_seconds",
                 "When a restore test last proved a backup restorable (Unix time; 0 when never).", labels,
                 proven.timestamp() if proven else 0.0)  # fmt: skip
    if newest is not None:
        yield _gauge("pgconsole_backup_last_size_bytes", "Size of the newest backup.", labels, newest.size)
    if view.newest_seconds is not None:
        yield _gauge("pgconsole_backup_last_duration_seconds", "How long the newest backup took (its manifest).",
                     labels, view.newest_seconds)  # fmt: skip


def _redis_metrics(labels: list[str]) -> Iterator[Metric]:
    settings, redis = services.settings(), services.redis()
    jobs = CounterMetricFamily("pgconsole_jobs", "Jobs finished by this console's workers, by kind and outcome.",
                               labels=[*LABELS, "kind", "outcome"])  # fmt: skip
    # Every kind and outcome from the start, at 0: Prometheus' increase() cannot see a series' first value.
    counts = {(kind, outcome): 0 for kind in JOB_KINDS for outcome in ("ok", "failed")}
    counts.update(job_counts(settings, redis))
    for (kind, outcome), count in sorted(counts.items()):
        jobs.add_metric([*labels, kind, outcome], count)
    yield jobs
    queue = queue_for(settings, redis)
    yield _gauge("pgconsole_jobs_running", "Backups, restores and verifies running now.", labels,
                 queue.started_job_registry.count)  # fmt: skip
    yield _gauge("pgconsole_queue_length", "Jobs waiting for a worker.", labels, queue.count)
    yield _gauge("pgconsole_scheduler_up", "Whether a scheduler sent a heartbeat in the last 2 minutes.", labels,
                 1.0 if scheduler_alive(redis, settings.redis_namespace) else 0.0)  # fmt: skip


def exposition() -> bytes:
    """The metrics in Prometheus' text format, computed now (the store listing from the cache)."""
    registry = current_app.extensions.get("pgconsole.metrics")
    if registry is None:  # one per app, so the store cache lives as long as the process
        registry = CollectorRegistry(auto_describe=False)
        registry.register(ConsoleCollector())
        registry = current_app.extensions.setdefault("pgconsole.metrics", registry)
    return generate_latest(registry)
