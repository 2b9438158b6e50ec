"""bench.scale's restore row: a real archive in SeaweedFS, streamed by the console into pg_restore.

    .venv/bin/python -m bench.scale --restore-size 10G

The archive: a database with one table holding about --restore-size bytes of text (rows of 64 KiB, one
md5 repeated: PostgreSQL's TOAST compresses each value, so this database and the restored copy take a
few percent of that on disk), backed up by the console's own backup path (`plan_backup`, `stream_backup`
with the real pg_dump, the signed manifest) with BACKUP_COMPRESSION=none, so the archive is as large as
the text, into a bucket on SeaweedFS (`weed mini`, as the tests start it). That backup runs in a worker
child of its own and is measured too.

Then a fresh worker child restores it as a restore job does when RESTORE_TMP_DIR has no room for a copy
(app/jobs/tasks.py, `_restore_into_scratch`): `restore.stream_archive` (the whole archive read once and its
checksums checked before anything is touched, then its head, for the preflight), `restore.preflight`, the
scratch database, `restore.restore_into` (one pg_restore reading its stdin as the same version of the archive
streams from the store again; the checksums checked once more at the end). The rows are then counted against
the source's and the scratch database dropped. Measured: the worker's peak PSS (pg_restore apart) and the
stream's throughput (archive bytes / seconds of `restore_into`; the first read's seconds are in scale.json,
`check_seconds`).
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from bench import common
from bench.common import MiB, log
from bench.s3_sink import Limits
from bench.scale import console_env, run_child, size_label, timed
from tests.support.processes import Processes

VALUE_BYTES = 64 * 1024  # one row's text: an md5 (32 characters) 2,048 times
BATCH_ROWS = 4096  # 256 MiB of text per INSERT
BUCKET = "scale-restore"


def build_database(name: str, size: int) -> int:
    """A new database `name` with `size` bytes of text in one table, `payload`; its row count."""
    from psycopg import sql

    rows = max(1, size // VALUE_BYTES)
    with common.pg_connect() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with common.pg_connect(name) as conn:
        conn.execute("CREATE TABLE payload (id integer PRIMARY KEY, body text NOT NULL)")
        for low in range(1, rows + 1, BATCH_ROWS):
            high = min(low + BATCH_ROWS - 1, rows)
            conn.execute("INSERT INTO payload SELECT g, repeat(md5(g::text), %s::int) "
                         "FROM generate_series(%s::int, %s::int) g",
                         (VALUE_BYTES // 32, low, high))  # fmt: skip
            if high % (4 * BATCH_ROWS) == 0 or high == rows:
                log(f"  {name}: {high * VALUE_BYTES / MiB:,.0f} MiB of {rows * VALUE_BYTES / MiB:,.0f}")
    return rows


# --------------------------------------------------------------------------- the worker children


def backup_child(spec: dict) -> None:
    """The console's backup of its target (the source database) into its store, with the manifest."""
    from app import services
    from app.domain import backup
    from app.jobs import runtime
    from bench.scale import load_worker

    flask_app = load_worker()
    with flask_app.app_context():
        settings, ours = services.settings(), runtime.console()
        tool = backup.choose_dump(ours.target, compression=settings.backup_compression, bin_dirs=settings.pg_bin_dirs)

        def work() -> dict:
            plan = backup.plan_backup(ours, tool)
            result = backup.stream_backup(plan, ours.target, ours.storage)
            manifest = backup.manifest_for(plan, result, console=ours, requested_by="bench.scale",
                                           signing_key=settings.signing_key)  # fmt: skip
            backup.publish_manifest(ours.storage, result, manifest)
            return {"filename": result.filename, "archive_bytes": result.size, "part_size": plan.part_size}

        timed(work, {})


def restore_child(spec: dict) -> None:
    """The backup `spec["filename"]` streamed from the store into pg_restore, into a scratch database that is
    counted and dropped."""
    from app import services
    from app.domain import catalog, restore
    from app.jobs import runtime
    from bench.scale import load_worker

    flask_app = load_worker()
    with flask_app.app_context():
        settings, ours = services.settings(), runtime.console()
        found = ours.find(spec["filename"])
        if found is None:
            print('{"refused": "the archive is not in the store"}', flush=True)
            return
        manifest = catalog.read_manifest(ours.storage, found.filename) if found.has_manifest else None

        def work() -> dict:
            import time

            with restore.temp_folder(settings.restore_tmp_dir) as folder:
                reading = time.monotonic()
                archive = restore.stream_archive(ours.storage, found, folder, manifest, target=ours.target,
                                                 free=shutil.disk_usage(folder).free, bin_dirs=settings.pg_bin_dirs)
                checked = time.monotonic() - reading
                contents = restore.preflight(ours.target, archive.path, with_owners=False,
                                             extensions=(manifest or {}).get("extensions"),
                                             bin_dirs=settings.pg_bin_dirs)  # fmt: skip
                scratch = restore.scratch_name(ours.target.dbname)
                restore.create_scratch_like(ours.target, scratch, contents.database)
                try:
                    started = time.monotonic()
                    tables = restore.restore_into(ours.target, archive, scratch, contents, jobs=1, with_owners=False,
                                                  bin_dirs=settings.pg_bin_dirs)  # fmt: skip
                    streamed = time.monotonic() - started
                    rows = restore.row_counts(ours.target, scratch)
                finally:
                    restore.drop_scratch(ours.target, scratch)
            return {"archive_bytes": found.size, "restore_seconds": streamed, "tables": tables, "rows": rows,
                    "checksum_verified": archive.checksum_verified, "check_seconds": checked}  # fmt: skip

        timed(work, {})


CHILDREN = {"backup": backup_child, "restore": restore_child}


# --------------------------------------------------------------------------- the row


def run_restore(workdir: Path, size: int, sample_seconds: float) -> dict:
    """The restore row: build the source, back it up into SeaweedFS, restore it streamed; everything removed."""
    name = f"pgconsole_scale_{uuid.uuid4().hex[:8]}"
    row = {"kind": "restore", "bytes": size, "max_parts": Limits().max_parts, "max_part_size": Limits().max_part_size}
    (workdir / "restore").mkdir(exist_ok=True)
    with common.s3_server("seaweedfs") as s3:
        client = common.s3_client(s3.url, s3.credentials)
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": common.REGION})
        try:
            log(f"restore {size_label(size)}: building {name}")
            rows = build_database(name, size)
            env = console_env(workdir, {"BACKUP_STORAGE_URL": f"s3://{BUCKET}", "S3_ENDPOINT_URL": s3.url,
                                        **s3.credentials},
                              DATABASE_URL=f"postgresql://{common.PG_USER}@{common.PG_HOST}:{common.PG_PORT}/{name}",
                              BACKUP_COMPRESSION="none", RESTORE_TMP_DIR=str(workdir / "restore"))  # fmt: skip
            Processes(workdir).flask(env, "db", "upgrade")
            made = run_child("backup", {}, env, label=f"backup of {name}", server_pid=s3.pid,
                             sample_seconds=sample_seconds)  # fmt: skip
            row["backup"] = {k: made.get(k) for k in ("seconds", "peak_pss_kib", "idle_pss_kib", "vmhwm_kib",
                                                      "archive_bytes", "part_size", "worker_cpu", "tool_cpu")}
            if "error" in made or "refused" in made:
                why = made.get("error") or made.get("refused")
                return {**row, "status": f"the backup that makes the archive failed: {why}"}
            log(f"restore {size_label(size)}: the archive is {made['archive_bytes'] / MiB:,.0f} MiB "
                f"({made['seconds']:.0f} s); streaming it into pg_restore")
            row.update(run_child("restore", {"filename": made["filename"]}, env, label=f"restore of {name}",
                                 server_pid=s3.pid, sample_seconds=sample_seconds))  # fmt: skip
            row["status"] = judge(row, rows)
            return row
        finally:
            common.drop_database(name)
            common.remove_bucket(s3.url, BUCKET, s3.credentials)


def judge(row: dict, rows: int) -> str:
    """"ok", or what went wrong: the worker's error, rows lost, a checksum not checked."""
    if "error" in row or "refused" in row:
        return row.get("error") or row["refused"]
    restored = (row.get("rows") or {}).get("public.payload")
    if restored != rows:
        return f"the copy holds {restored} rows of {rows}"
    if not row.get("checksum_verified"):
        return "the archive's checksum was not checked against its manifest"
    return "ok"
