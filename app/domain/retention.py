"""Which backups retention deletes, and why: newest N, optional daily/weekly/monthly, pins.

Only this app's and this environment's `.dump` files are ever candidates: another team's or
another environment's files in a shared bucket are never touched. Only *trusted* backups (a
signed manifest that matches, see provenance.py) are ranked and deleted: anyone who can write
to the bucket can add files named like ours, dated in 2099, and an untrusted file must never
push out a backup the console can prove it made. Untrusted files are kept and say why.
Pinned backups are always kept and do not count toward N. The backup just made is always
kept, whatever its clock says.
With daily/weekly/monthly counts set (grandfather-father-son), the newest backup of each of
the last D days, W ISO weeks and M months (in the display time zone) is kept as well.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from app.domain.catalog import Backup
from app.domain.naming import Owner


@dataclass(frozen=True)
class RetentionPolicy:
    newest: int
    daily: int = 0
    weekly: int = 0
    monthly: int = 0

    def describe(self) -> str:
        extra = [f"{n} {unit}" for n, unit in ((self.daily, "daily"), (self.weekly, "weekly"),
                                                (self.monthly, "monthly")) if n]  # fmt: skip
        return f"newest {self.newest}" + (f" + {', '.join(extra)}" if extra else "")


@dataclass(frozen=True)
class Decision:
    backup: Backup
    keep: bool
    reasons: tuple[str, ...]


UNTRUSTED = "not trusted (no manifest signed by this team's key): retention neither counts nor deletes it"


def retention_plan(
    backups: list[Backup],
    owner: Owner,
    policy: RetentionPolicy,
    zone: ZoneInfo | None = None,
    just_made: str | None = None,
    *,
    trusted: Callable[[Backup], bool],
) -> list[Decision]:
    """A decision, with its reasons, for every candidate backup, newest first.

    `trusted` says whether a backup of ours has a signed manifest that matches it; it is asked
    only for our backups (the one just made is trusted: it was published a moment ago).
    """
    zone = zone or ZoneInfo("UTC")
    mine = [b for b in backups if owner.owns(b)]
    mine.sort(key=lambda b: (b.filename == just_made, b.created_at, b.filename), reverse=True)
    untrusted = {b.filename for b in mine if b.filename != just_made and not trusted(b)}
    reasons: dict[str, list[str]] = {b.filename: [UNTRUSTED] if b.filename in untrusted else [] for b in mine}
    ranked = [b for b in mine if not b.pinned and b.filename not in untrusted]
    for b in mine:
        if b.pinned:
            reasons[b.filename].append("pinned")
        if b.filename == just_made:
            reasons[b.filename].append("just made")
    for b in ranked[: policy.newest]:
        reasons[b.filename].append(f"among the newest {policy.newest}")
    periods: list[tuple[int, str, Callable]] = [
        (policy.daily, "day", lambda t: t.strftime("%Y-%m-%d")),
        (policy.weekly, "week", lambda t: "{}-W{:02d}".format(*t.isocalendar()[:2])),
        (policy.monthly, "month", lambda t: t.strftime("%Y-%m")),
    ]
    for count, unit, key in periods:
        seen: list[str] = []
        for b in ranked:  # newest first, so the first of each period is its newest
            period = key(b.created_at.astimezone(zone))
            if period not in seen:
                seen.append(period)
                if len(seen) <= count:
                    reasons[b.filename].append(f"newest of {unit} {period}")
    plan = []
    for b in mine:
        kept = reasons[b.filename]
        if kept:
            plan.append(Decision(b, True, tuple(kept)))
        else:
            why = f"older than the newest {policy.newest}"
            if policy.daily or policy.weekly or policy.monthly:
                why += ", and not the newest of a kept day, week or month"
            plan.append(Decision(b, False, (why,)))
    return plan


def expired_backups(
    backups: list[Backup],
    owner: Owner,
    keep: int | RetentionPolicy,
    just_made: str | None = None,
    zone: ZoneInfo | None = None,
    *,
    trusted: Callable[[Backup], bool],
) -> list[Backup]:
    """The backups retention deletes, newest first (see `retention_plan` for the reasons)."""
    policy = keep if isinstance(keep, RetentionPolicy) else RetentionPolicy(newest=keep)
    return [d.backup for d in retention_plan(backups, owner, policy, zone, just_made, trusted=trusted)
            if not d.keep]  # fmt: skip
