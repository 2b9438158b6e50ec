"""/healthz: what a load balancer needs, cheaply, and the detail a signed-in person needs.

Anonymous callers get the overall status and the component checks (redis, storage, database,
console_store, scheduler: `ok` or down) from a cache at most CACHE_SECONDS old (shared by the
threads of one process, refreshed by one of them at a time), and never a target's name, the
bucket listing or a file name: anyone can reach this URL, and each fresh answer costs a call to
Redis, the store, the target database and the console store. A signed-in user or a valid API
token gets fresh checks and the newest backup of the default target, if they may see it.

With several targets `storage` and `database` say on how many targets they are down (no names);
a signed-in caller also gets the per-target checks (`storage:NAME`, `database:NAME`) and the
newest backup of each target they may see, and nothing of a target hidden from them.
"""

from __future__ import annotations

import threading
import time

from flask import Blueprint, current_app, jsonify, request
from flask_login import current_user

from app import services
from app.config import Settings
from app.health import targets
from app.health.status import as_seen_by, component_checks
from app.web.access import load_user_from_token, visible_targets

bp = Blueprint("health", __name__)
CACHE_SECONDS = 15.0


def newest_backup(settings: Settings) -> dict | None:
    newest = targets.newest_backup(settings)
    return newest.to_json() if newest else None


class _CachedChecks:
    """The last component report of this app, at most `CACHE_SECONDS` old; one refresh at a time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.report: dict[str, str] | None = None
        self.at = 0.0

    def get(self) -> dict[str, str]:
        with self.lock:  # others wait for the refresh instead of each running the checks
            if self.report is None or time.monotonic() - self.at > CACHE_SECONDS:
                self.report, self.at = component_checks(), time.monotonic()
            return dict(self.report)


def cached_checks() -> dict[str, str]:
    cache = current_app.extensions.setdefault("pgconsole.health", _CachedChecks())
    return cache.get()


@bp.route("/healthz")
def healthz():
    detailed = current_user.is_authenticated or load_user_from_token(request) is not None
    # visible_targets() is every target for an anonymous caller: they get none named.
    visible = visible_targets() if detailed else []
    report = as_seen_by(component_checks() if detailed else cached_checks(), [t.name for t in visible])
    down = [name for name, state in report.items() if state != "ok"]
    body: dict = {"status": "ok" if not down else "down", "checks": report}
    console = services.console_settings()
    if any(t.name == console.default_target for t in visible):
        body["newest_backup"] = newest_backup(console.for_target(None))
    if detailed and console.several_targets:
        body["targets"] = {t.name: {"environment": t.app_env,
                                    "newest_backup": newest_backup(console.for_target(t.name))}
                           for t in visible}  # fmt: skip
    if down:
        body["down"] = down
    return jsonify(body), 503 if down else 200
