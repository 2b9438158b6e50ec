"""Whether the console's parts answer: the checks behind /healthz and pgconsole_up in /metrics."""

from __future__ import annotations

from app import services
from app.domain import pgtools
from app.extensions import db
from app.jobs.schedule import effective_schedule, scheduler_alive

COMPONENTS = ("redis", "storage", "database", "console_store")


def component_checks() -> dict[str, str]:
    """Each dependency is `ok` or a short reason; never a secret (no URL, no credentials)."""
    checks = {
        "redis": lambda: services.redis().ping(),
        "storage": lambda: services.storage().check(),
        "database": lambda: pgtools.ping(services.settings().target),
        "console_store": lambda: db.session.execute(db.text("SELECT 1")),
    }
    report = {}
    for name, check in checks.items():
        try:
            check()
            report[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means "down", named below
            report[name] = f"down: {type(exc).__name__}"
    settings = services.settings()
    if effective_schedule(settings):
        alive = scheduler_alive(services.redis(), settings.redis_namespace)
        report["scheduler"] = "ok" if alive else "down: no scheduler heartbeat in 2 minutes"
    return report
