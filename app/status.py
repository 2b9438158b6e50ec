"""Whether the console's parts answer: the checks behind /healthz and pgconsole_up in /metrics.

Redis and the console store are shared; each target's store and database are checked on their
own. With one target their checks are `storage` and `database`, as always; with several,
`storage:NAME` and `database:NAME` (see `check_name`).
"""

from __future__ import annotations

from app import services
from app.domain import pgtools
from app.extensions import db
from app.jobs.schedule import effective_schedule, scheduler_alive

COMPONENTS = ("redis", "storage", "database", "console_store")
PER_TARGET = ("storage", "database")


def check_name(component: str, target: str | None) -> str:
    """The key of `component`'s check for `target` in the report (per-target ones carry the name)."""
    several = services.console_settings().several_targets
    return f"{component}:{target}" if several and component in PER_TARGET and target else component


def component_checks() -> dict[str, str]:
    """Each dependency is `ok` or a short reason; never a secret (no URL, no credentials)."""
    console = services.console_settings()
    names = [t.name for t in console.targets] or [None]
    checks = {"redis": lambda: services.redis().ping()}
    for name in names:
        checks[check_name("storage", name)] = lambda name=name: services.storage(name).check()
        checks[check_name("database", name)] = lambda name=name: pgtools.ping(console.for_target(name).target)
    checks["console_store"] = lambda: db.session.execute(db.text("SELECT 1"))
    report = {}
    for name, check in checks.items():
        try:
            check()
            report[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means "down", named below
            report[name] = f"down: {type(exc).__name__}"
    if any(effective_schedule(console.for_target(name)) for name in names):
        alive = scheduler_alive(services.redis(), console.redis_namespace)
        report["scheduler"] = "ok" if alive else "down: no scheduler heartbeat in 2 minutes"
    return report
