from __future__ import annotations

from flask import Blueprint, jsonify

from app import services
from app.domain import pgtools
from app.extensions import db

bp = Blueprint("health", __name__)


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
    down = [name for name, state in report.items() if state != "ok"]
    body = {"status": "ok" if not down else "down", "checks": report}
    if down:
        body["down"] = down
    return jsonify(body), 503 if down else 200
