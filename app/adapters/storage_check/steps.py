"""What a storage check reports, and how its steps run: in order, each after the ones it needs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

PROBE_PREFIX = ".pgconsole-check-"
TIME_LIMIT = 20.0  # seconds: the page waits for the check, and gunicorn kills a request at 30
NOT_RUN = "NotRun"


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    code: str = ""  # the server's error code (AccessDenied, EROFS…), or NotRun
    message: str = ""

    @property
    def ran(self) -> bool:
        return self.code != NOT_RUN

    @property
    def outcome(self) -> str:
        return "ok" if self.ok else "FAILED" if self.ran else "not run"

    def line(self) -> str:
        """One line for the command line: `name: ok`, `name: FAILED: code, message`, `name: not run: why`."""
        if self.ok:
            return f"{self.name}: ok" + (f" ({self.message})" if self.message else "")
        if not self.ran:
            return f"{self.name}: not run: {self.message}"
        return f"{self.name}: FAILED: {self.code}, {self.message}"


class CheckFailed(Exception):
    """One check failed; `fatal` when no later call can succeed either (no bucket, refused keys…)."""

    def __init__(self, code: str, message: str, fatal: bool = False):
        super().__init__(message)
        self.code, self.message, self.fatal = code, message, fatal



class Steps:
    """Runs checks in order, each after the ones it needs; a fatal failure stops the rest."""

    def __init__(self, time_limit: float, translate: Callable[[Exception], CheckFailed]):
        self.results: list[CheckResult] = []
        self.stopped = ""  # why the remaining checks are not run
        self.deadline = time.monotonic() + time_limit
        self.time_limit = time_limit
        self.translate = translate

    def passed(self, name: str) -> bool:
        return any(r.name == name and r.ok for r in self.results)

    def run(self, name: str, check: Callable[[], str | None], needs: tuple[str, ...] = ()) -> bool:
        reason = self.stopped or next((f"needs {n}, which did not pass" for n in needs if not self.passed(n)), "")
        if not reason and time.monotonic() > self.deadline:
            reason = f"the check ran out of time ({self.time_limit:.0f} s); the store answers slowly"
        if reason:
            self.results.append(CheckResult(name, False, NOT_RUN, reason))
            return False
        try:
            note = check()
        except Exception as exc:  # noqa: BLE001 - a check reports every failure; it never crashes the page
            failure = exc if isinstance(exc, CheckFailed) else self.translate(exc)
            self.results.append(CheckResult(name, False, failure.code, failure.message))
            if failure.fatal:
                self.stopped = f"{name} failed ({failure.code})"
            return False
        self.results.append(CheckResult(name, True, "", note or ""))
        return True

