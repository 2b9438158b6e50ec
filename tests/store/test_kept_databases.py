"""The databases kept for RESTORE_KEEP_PREVIOUS are recorded in the console store (app/jobs/kept_databases.py):
a claim is one UPDATE that exactly one of any number of processes wins, on SQLite and on PostgreSQL; a claimed
record is offered to nobody; only names a restore of the target can have set aside are ever used.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import REDIS_URL
from tests.store.test_migrations import flask, store_env  # noqa: F401  (store_env: the SQLite/PostgreSQL fixture)
from tests.support import ROOT

HOUR = timedelta(hours=1)


def test_of_two_claims_of_one_kept_database_exactly_one_wins(store_env, redis_ns, monkeypatch):  # noqa: F811
    from app import create_app
    from app.domain.restore_database import scratch_name
    from app.jobs import kept_databases

    upgraded = flask(ROOT, store_env, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    for name in ("DATABASE_URL", "CONSOLE_DATABASE_URL", "INSTANCE_PATH"):
        monkeypatch.delenv(name, raising=False)
    # Two consoles on one store, each with its own engine and connections: as two processes.
    apps = [create_app({**store_env, "REDIS_URL": REDIS_URL, "REDIS_NAMESPACE": redis_ns, "TESTING": True})
            for _ in range(2)]  # fmt: skip
    settings = apps[0].config["SETTINGS"]
    try:
        with apps[0].app_context():
            until = datetime.now(UTC) + HOUR
            kept = [kept_databases.keep(settings, scratch_name(settings.target.dbname, "previous"), until,
                                        f"safety-{n}.dump", None) for n in range(10)]  # fmt: skip
        won: dict[int, list[bool]] = {k.id: [] for k in kept}
        barrier = threading.Barrier(2)

        def claim_all(app) -> None:
            with app.app_context():
                for entry in kept:
                    barrier.wait(timeout=30)  # both claim each one at the same moment
                    won[entry.id].append(kept_databases.claim(entry))

        threads = [threading.Thread(target=claim_all, args=(app,)) for app in apps]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert all(sorted(results) == [False, True] for results in won.values()), won
        with apps[1].app_context():
            assert kept_databases.all_kept(settings) == []  # claimed: offered to no swap back, swept by no one
    finally:
        for app in apps:
            with app.app_context():
                from app.extensions import db

                db.engine.dispose()


def test_a_claimed_database_is_offered_again_only_when_given_back_and_goes_once_acted_on(app):
    from app.domain.restore_database import scratch_name
    from app.extensions import db
    from app.jobs import kept_databases
    from app.store.models import KeptDatabaseRecord

    settings = app.config["SETTINGS"]
    live = settings.target.dbname
    with app.app_context():
        kept = kept_databases.keep(settings, scratch_name(live, "previous"), datetime.now(UTC) + HOUR, "s.dump", "j1")
        assert kept_databases.kept_with(settings, "s.dump") == kept
        assert not kept_databases.may_drop(settings, kept.database)  # kept, not claimed: no drop job may drop it
        assert kept_databases.kept_with(settings, "s.dump", now=kept.until_at) is None  # its time is up: not offered
        assert kept_databases.claim(kept) and not kept_databases.claim(kept)
        assert kept_databases.kept_with(settings, "s.dump") is None and kept_databases.may_drop(settings, kept.database)
        kept_databases.release(kept)  # a swap back that failed
        assert kept_databases.kept_with(settings, "s.dump") == kept
        assert not kept_databases.may_drop(settings, kept.database)
        kept_databases.forget(settings, kept.database)  # unclaimed: stays
        assert kept_databases.claim(kept)
        kept_databases.forget(settings, kept.database)
        assert db.session.execute(db.select(KeptDatabaseRecord)).scalars().all() == []

        # Only a name a restore of this target sets aside is recorded, or used (say, after DATABASE_URL changed).
        for name in (live, scratch_name(live, "restore"), scratch_name("other", "previous")):
            with pytest.raises(ValueError, match="is not a database a restore of"):
                kept_databases.keep(settings, name, datetime.now(UTC) + HOUR, "s.dump", None)
        db.session.add(KeptDatabaseRecord(target=settings.target_name, database=scratch_name("other", "previous"),
                                          safety_backup="s.dump", kept_until=datetime.now(UTC) - HOUR))  # fmt: skip
        db.session.commit()
        assert kept_databases.all_kept(settings) == [] and kept_databases.kept_with(settings, "s.dump") is None
        assert kept_databases.drop_when_due(settings, None) == []  # nothing to drop: the Redis queue is not needed
