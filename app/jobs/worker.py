"""The console's RQ worker: RQ's own, plus a quick look for jobs whose worker has died.

RQ finds an abandoned job only when its heartbeat entry expires (about a minute after the
worker died) and the next maintenance pass runs. A worker that starts on the same host can
tell at once that the old worker's process is gone; it then marks that job's entry as
expired, so RQ's own cleanup fails it through the same path (failure callback included).
"""

from __future__ import annotations

import os
import socket

from rq import Worker
from rq.registry import StartedJobRegistry

from app.jobs.queue import fetch_job, worker_options


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_is_gone(connection, worker_name: str | None) -> bool:
    """True when the named worker is certainly dead: its key expired, or its process on this host is gone."""
    if not worker_name:
        return False
    worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + worker_name, connection=connection)
    if worker is None:
        return True
    return worker.hostname == socket.gethostname() and worker.pid is not None and not _process_alive(worker.pid)


def expire_orphaned_jobs(registry: StartedJobRegistry) -> list[str]:
    """Mark started jobs of dead workers as expired, so the next cleanup fails them."""
    orphaned = []
    for entry in registry.connection.zrange(registry.key, 0, -1):
        entry = entry.decode()
        job = fetch_job(registry.connection, entry.split(":", 1)[0])
        if job is None:
            continue
        if worker_is_gone(registry.connection, job.worker_name):
            registry.connection.zadd(registry.key, {entry: 1}, xx=True)
            orphaned.append(job.id)
    return orphaned


class ConsoleWorker(Worker):
    """RQ's worker, reading jobs as JSON and running only the console's own functions (jobs/queue.py)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{**kwargs, **worker_options()})

    def clean_registries(self) -> None:
        for queue in self.queues:
            orphaned = expire_orphaned_jobs(queue.started_job_registry)
            if orphaned:
                self.log.warning("jobs of a worker that died: %s; reporting them as failed", ", ".join(orphaned))
        super().clean_registries()
