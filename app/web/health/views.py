from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, jsonify

from app import services
from app.domain import pgtools
from app.domain.catalog import list_backups
from app.extensions import db
from app.jobs.schedule import effective_schedule, scheduler_alive

bp = Blueprint("health", __name__)


def newest_backup(settings) -> dict | None:
    """Age of this environment's newest backup: reported, not a reason for 503 (alerts cover it)."""
    try:
        backups = list_backups(services.storage(), settings.zone)
    except Exception:  # noqa: BLE001 - storage being down is reported by its own check
        return None
    mine = [b for b in backups if b.environment == settings.app_env and b.app_name == settings.app_name]
    if not mine:
        return {"filename": None, "age_seconds": None, "stale": True}
    age = (datetime.now(UTC) - mine[0].created_at).total_seconds()
    return {"filename": mine[0].filename, "age_seconds": int(age), "stale": age > settings.backup_max_age_hours * 3600}


@bp.route("/healthz")
def healthz():
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
    down = [name for name, state in report.items() if state != "ok"]
    body = {"status": "ok" if not down else "down", "checks": report, "newest_backup": newest_backup(settings)}
    if down:
        body["down"] = down
    return jsonify(body), 503 if down else 200
