"""Whether the console's parts answer: the checks behind /healthz and pgconsole_up in /metrics.

Redis and the console store are shared; each target's store and database are checked on their
own. With one target their checks are `storage` and `database`, as always; with several,
`storage:NAME` and `database:NAME` (see `check_name`), which `as_seen_by` folds into `storage` and
`database` for a caller who may not see every target.
"""

from __future__ import annotations

from collections.abc import Collection

from app import services
from app.adapters import postgres
from app.extensions import db
from app.formatting import human_count
from app.scheduler import scheduler_alive
from app.store.schedule import effective_schedule

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
        checks[check_name("database", name)] = lambda name=name: postgres.ping(console.for_target(name).target)
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


def as_seen_by(report: dict[str, str], visible: Collection[str]) -> dict[str, str]:
    """`report` as told to a caller who may see the targets `visible` (none: an anonymous caller).

    Each per-target component is one check over every target (`storage`, `database`): `ok`, or on
    how many targets it is down, without their names; the per-target checks follow for `visible`
    targets only. So nobody learns a target's name from /healthz unless they may see that target,
    and a load balancer still gets `storage` and `database` whatever the number of targets.
    """
    shown = {name: state for name, state in report.items() if ":" not in name}
    for component in PER_TARGET:
        states = {name.partition(":")[2]: state for name, state in report.items() if name.startswith(f"{component}:")}
        if not states:
            continue  # one target: its check is already the component's
        down = sum(state != "ok" for state in states.values())
        shown[component] = "ok" if not down else f"down: on {human_count(down, 'target')}"
        shown.update({check_name(component, target): state for target, state in states.items() if target in visible})
    return shown
