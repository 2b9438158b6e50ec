"""One place that writes the audit log. Callers pass facts; secrets are never among them.

Each event records the target (database) it concerns: the one the request or job acts on
(`services.acting_on`), unless the caller names another; events about no target (sign-ins,
people) have none.
"""

from __future__ import annotations

from app import services
from app.extensions import db
from app.store.models import AuditEvent


def record(
    action: str,
    outcome: str,
    *,
    username: str | None = None,
    target: str | None = None,
    detail: str | None = None,
    job_id: str | None = None,
    address: str | None = None,
    target_name: str | None = None,
) -> AuditEvent:
    """Append one event and commit it at once, so it survives whatever fails next."""
    event = AuditEvent(
        action=action,
        outcome=outcome,
        username=username,
        target=target,
        detail=(detail or None) and detail[:4000],
        job_id=job_id,
        address=address,
        target_name=target_name or services.scoped_target(),
    )
    db.session.add(event)
    db.session.commit()
    return event
