"""Second copies (3-2-1): every backup copied to a copy store and read back there, retention per store, a restore
that reads from the copy when the first store cannot be read, and a copy store that is down (the backup stands,
the copy job fails and alerts). Real servers: SeaweedFS and folders."""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import (
    PASSKEY,
    backup_run_in_process,
    job_of,
    restore_api,
    run_jobs_for,
    signed_in,
    tiny_disk,
    wait_for,
)
from tests.support.databases import table_fingerprint


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def targets_file(tmp_path: Path, target_db: str, storage_url: str, store: str) -> str:
    path = tmp_path / "targets.toml"
    path.write_text(f"""
[stores.offsite]
{store}

[targets.app]
environment = "staging"
app_name = "pharmatracker"
database_url = "postgresql://postgres@127.0.0.1:5432/{target_db}"
storage_url = "{storage_url}"
restore_passkey_env = "APP_PASSKEY"
copies = ["offsite"]
""")
    return str(path)


@pytest.fixture
def bucket_and_folder(make_app, seaweedfs_bucket, target_db, tmp_path, webhook):
    """A console whose target's store is a SeaweedFS bucket and whose copy store is a folder; (app, make, folder)."""
    copy_folder = tmp_path / "copy-store"
    s3 = {k: v for k, v in seaweedfs_bucket.env.items() if k != "BACKUP_STORAGE_URL"}
    env = {**s3, "TARGETS_FILE": targets_file(tmp_path, target_db, f"s3://{seaweedfs_bucket.name}",
                                              f'storage_url = "{copy_folder.as_uri()}"'),
           "APP_PASSKEY": PASSKEY, "MAX_BACKUP_FILES": "2", "ALERT_WEBHOOK_URL": webhook[0]}  # fmt: skip

    def make(**overrides: str):
        return make_app(**{**env, **overrides})

    return make(), make, copy_folder


def dumps_in(names: list[str]) -> list[str]:
    return sorted(n for n in names if n.endswith(".dump"))


def copies_of(app) -> dict:
    from app.store import copies

    with app.app_context():
        return copies.copies_of("app")


def test_every_backup_is_copied_verified_and_retained_per_store(bucket_and_folder, seaweedfs_bucket, make_user,
                                                                token_for):  # fmt: skip
    app, _, folder = bucket_and_folder
    made = []
    for _ in range(3):
        status = backup_run_in_process(app)  # runs the copy job too
        assert status["status"] == "finished", status["error"]
        made.append(status["result"]["filename"])
    bucket = dumps_in([o["Key"] for o in seaweedfs_bucket.client().list_objects_v2(
        Bucket=seaweedfs_bucket.name).get("Contents", [])])  # fmt: skip
    copied = dumps_in([p.name for p in folder.iterdir()])
    assert bucket == copied == sorted(made[1:])  # MAX_BACKUP_FILES=2 in each store, judged on its own listing
    client = seaweedfs_bucket.client()
    for name in copied:
        manifest = json.loads((folder / f"{name}.json").read_bytes())
        body = client.get_object(Bucket=seaweedfs_bucket.name, Key=f"{name}.json")["Body"].read()
        assert json.loads(body) == manifest  # the manifest travels byte for byte
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == manifest["sha256"]
    recorded = copies_of(app)
    assert sorted(recorded) == sorted(made[1:])  # the one retention deleted there is forgotten
    assert all(c.store == "offsite" and c.verified for name in recorded for c in recorded[name])
    client, _ = signed_in(app, make_user, "viewer")
    listed = client.get("/").get_data(as_text=True)
    assert listed.count("also in offsite") == 2
    page = client.get(f"/backups/{made[-1]}").get_data(as_text=True)
    assert "Store offsite: present and verified" in page
    facts = client.get(f"/api/targets/app/backups/{made[-1]}", headers=token_for("olga")).get_json()
    assert [(c["store"], c["state"]) for c in facts["copies"]] == [("offsite", "verified")]


def test_a_restore_reads_from_the_copy_when_the_first_store_is_down(bucket_and_folder, make_user, token_for,
                                                                     target_db):  # fmt: skip
    app, make, _ = bucket_and_folder
    make_user("ada", "admin")
    admin = token_for("ada")
    at_backup = table_fingerprint(target_db)
    filename = backup_run_in_process(app)["result"]["filename"]
    import psycopg

    from tests.support.databases import PG

    with psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True) as conn:
        conn.execute("DELETE FROM orders")
    response = restore_api(app.test_client(), admin, filename)  # asked while the first store answers
    assert response.status_code == 202, response.get_json()
    down = make(S3_ENDPOINT_URL=f"http://127.0.0.1:{closed_port()}")  # the worker finds the first store stopped
    run_jobs_for(down)
    status = job_of(down, response.get_json()["job_id"])
    assert status["status"] == "finished", status["error"]
    assert table_fingerprint(target_db) == at_backup
    assert f"{filename} was read from its verified copy in store offsite" in status["warning"]


def test_a_restore_reads_from_the_copy_when_the_object_is_gone(bucket_and_folder, make_user, token_for,
                                                                seaweedfs_bucket, target_db):  # fmt: skip
    app, _, _ = bucket_and_folder
    make_user("ada", "admin")
    admin = token_for("ada")
    filename = backup_run_in_process(app)["result"]["filename"]
    response = restore_api(app.test_client(), admin, filename)
    assert response.status_code == 202, response.get_json()
    seaweedfs_bucket.client().delete_object(Bucket=seaweedfs_bucket.name, Key=filename)
    run_jobs_for(app)
    status = job_of(app, response.get_json()["job_id"])
    assert status["status"] == "finished", status["error"]
    assert "missing from it" in status["warning"] and "store offsite" in status["warning"]


@pytest.fixture(params=["s3-at-a-closed-port", "folder-on-a-full-disk"])
def unreachable_store(request, tmp_path) -> Iterator[str]:
    """A [stores.offsite] body for a copy store that takes nothing: nobody listening, or a full tmpfs."""
    if request.param == "s3-at-a-closed-port":
        yield f'storage_url = "s3://nowhere"\nendpoint_url = "http://127.0.0.1:{closed_port()}"'
        return
    with tiny_disk(tmp_path / "full", "1m") as folder:
        with contextlib.suppress(OSError), open(folder / "filler", "wb") as filler:  # noqa: PTH123
            while True:
                filler.write(b"x" * 65536)
        yield f'storage_url = "{(folder / "copies").as_uri()}"'


def test_a_copy_store_that_is_down_fails_the_copy_and_alerts_never_the_backup(make_app, target_db, tmp_path,
                                                                              webhook, make_user,
                                                                              unreachable_store):  # fmt: skip
    url, bodies = webhook
    keys = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}
    first = (tmp_path / "first").as_uri()
    app = make_app(TARGETS_FILE=targets_file(tmp_path, target_db, first, unreachable_store),
                   APP_PASSKEY=PASSKEY, ALERT_WEBHOOK_URL=url, **keys)  # fmt: skip
    status = backup_run_in_process(app)
    assert status["status"] == "finished", status["error"]
    filename = status["result"]["filename"]
    assert (tmp_path / "first" / filename).exists()
    wait_for(lambda: any("copy-failed" in json.dumps(b) for b in bodies), message="the copy-failed alert")
    alert = json.dumps([b for b in bodies if "copy-failed" in json.dumps(b)][0])
    assert filename in alert and "offsite" in alert
    [copy] = copies_of(app)[filename]
    assert not copy.verified and copy.error
    client, _ = signed_in(app, make_user, "viewer")
    assert "copy to offsite failed" in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize(
    ("stores", "copies", "expected"),
    [
        ("", '["offsite"]', "target 'app', key 'copies': names the store 'offsite', which is not a [stores.NAME]"),
        ('[stores.offsite]\nstorage_url = "ftp://x"\n', '["offsite"]',
         "store 'offsite', key 'storage_url': must start with s3:// or file:///"),
        ('[stores.offsite]\nstorage_url = "s3://b"\nsecret_access_key = "hunter22"\n', '["offsite"]',
         "store 'offsite', key 'secret_access_key': a secret is never written in the file"),
        ('[stores.offsite]\nstorage_url = "s3://b"\nsecret_access_key_env = "NOT_SET"\n', '["offsite"]',
         "store 'offsite', key 'secret_access_key_env': names the environment variable NOT_SET, which is not set"),
        ('[stores.offsite]\nstorage_url = "s3://b"\nbucket = "x"\n', '["offsite"]',
         "store 'offsite', key 'bucket': unknown key"),
        ('[stores.offsite]\nstorage_url = "file:///tmp/first"\n', '["offsite"]',
         "target 'app', key 'copies': store 'offsite' is the target's own storage_url"),
        ('[stores.offsite]\nstorage_url = "s3://b"\n', '"offsite"', "target 'app', key 'copies': must be a list"),
    ],
)  # fmt: skip
def test_a_malformed_copy_store_is_refused_naming_the_table_and_key(tmp_path, stores, copies, expected):
    from app.config import ConfigError, Settings

    path = tmp_path / "targets.toml"
    path.write_text(f'{stores}\n[targets.app]\ndatabase_url = "postgresql://postgres@127.0.0.1:5432/db"\n'
                    f'storage_url = "file:///tmp/first"\ncopies = {copies}\n')  # fmt: skip
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"TARGETS_FILE": str(path), "SECRET_KEY": "k"})
    assert str(raised.value).startswith("TARGETS_FILE: " + expected)
    assert "hunter22" not in str(raised.value)


def test_a_copy_store_takes_its_own_keys_from_the_variables_it_names(tmp_path):
    from app.config import Settings

    path = tmp_path / "targets.toml"
    path.write_text('[stores.offsite]\nstorage_url = "s3://other/prefix"\nendpoint_url = "https://s3.example"\n'
                    'access_key_id_env = "OFF_KEY"\nsecret_access_key_env = "OFF_SECRET"\n'
                    '[targets.app]\ndatabase_url = "postgresql://postgres@127.0.0.1:5432/db"\n'
                    'storage_url = "file:///tmp/first"\ncopies = ["offsite"]\n')  # fmt: skip
    settings = Settings.from_env({"TARGETS_FILE": str(path), "SECRET_KEY": "k", "OFF_KEY": "AK", "OFF_SECRET": "SK"})
    [store] = settings.copies
    assert (store.name, store.storage_url, store.endpoint_url, store.access_key, store.secret_key) == (
        "offsite", "s3://other/prefix", "https://s3.example", "AK", "SK")  # fmt: skip
    assert "SK" not in repr(store)
