"""Encrypted backups (age): an ordinary age file that `age -d` and `pg_restore` read without the console,
restored and verified by a worker that holds a key, refused before anything is touched otherwise."""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from app.domain.naming import backup_filename
from tests.helpers import (
    NOTHING_LEFT,
    AuthActions,
    backup_behind_a_lock,
    backup_run_in_process,
    keys,
    leftovers,
    restore_api,
    restore_through_api,
    run_jobs_for,
    storage_of,
)
from tests.jobs.test_backups import limited_role  # noqa: F401 - a fixture, used through request.getfixturevalue
from tests.jobs.test_restore import assert_failed_and_unchanged, change_live
from tests.support.databases import table_fingerprint

AGE_MAGIC = b"age-encryption.org/v1\n"


def age_key(folder: Path, name: str) -> tuple[Path, str]:
    """A fresh age identity file made by the standard `age-keygen`, and its public key."""
    path = folder / f"{name}.txt"
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    public = subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True)
    return path, public.stdout.strip()


def identity_file(folder: Path, name: str, *keys: Path) -> Path:
    """An identity file holding several keys, as after a rotation."""
    path = folder / name
    path.write_text("".join(key.read_text() for key in keys))
    return path


@pytest.fixture
def key_a(tmp_path):
    return age_key(tmp_path, "key-a")


@pytest.fixture
def key_b(tmp_path):
    return age_key(tmp_path, "key-b")


@pytest.fixture
def encrypted_app(make_app, key_a):
    path, public = key_a
    return make_app(BACKUP_ENCRYPTION_RECIPIENTS=public, BACKUP_ENCRYPTION_IDENTITY_FILE=str(path))


@pytest.fixture
def admin_headers(encrypted_app, token_for):
    from app.accounts.people import create_user

    with encrypted_app.app_context():
        create_user("ada", "admin", "correct horse battery staple", created_by="test")
    return token_for("ada")


def backed_up(app) -> dict:
    status = backup_run_in_process(app)
    assert status["status"] == "finished", status["error"]
    return status["result"]


def manifest_of(app, filename: str) -> dict:
    return json.loads(storage_of(app).get_bytes(filename + ".json"))


def test_an_encrypted_backup_is_an_age_file_that_age_and_pg_restore_read(encrypted_app, key_a, tmp_path):
    path, public = key_a
    result = backed_up(encrypted_app)
    name = result["filename"]
    assert name.endswith(".dump.age")
    stored = storage_of(encrypted_app).get_bytes(name)
    assert not stored.startswith(b"PGDMP") and stored.startswith(AGE_MAGIC)
    assert b"customers" not in stored  # the table names of the plain archive's TOC are not readable

    encrypted_file = tmp_path / name
    encrypted_file.write_bytes(stored)
    plain_file = tmp_path / name.removesuffix(".age")
    with open(plain_file, "wb") as out:  # exactly the README's command
        subprocess.run(["age", "-d", "-i", str(path), str(encrypted_file)], stdout=out, check=True)
    plain = plain_file.read_bytes()
    assert plain.startswith(b"PGDMP")
    listing = subprocess.run(["pg_restore", "--list", str(plain_file)], capture_output=True, text=True, check=True)
    assert "TABLE DATA public customers" in listing.stdout and "TABLE DATA public orders" in listing.stdout

    manifest = manifest_of(encrypted_app, name)
    assert manifest["encryption"] == {"format": "age", "recipients": [public]}
    assert manifest["sha256"] == hashlib.sha256(stored).hexdigest() == result["sha256"]
    assert manifest["size"] == len(stored) == result["size"]
    assert manifest["archive_sha256"] == hashlib.sha256(plain).hexdigest()
    assert manifest["archive_size"] == len(plain)
    assert "AGE-SECRET-KEY" not in json.dumps(manifest)


def test_the_list_and_the_restore_page_mark_it_and_say_how_to_decrypt(encrypted_app, admin_headers):
    name = backed_up(encrypted_app)["filename"]
    client = encrypted_app.test_client()
    listed = client.get("/api/setting/backups", headers=admin_headers).get_json()
    assert [(b["filename"], b["encrypted"]) for b in listed] == [(name, True)]

    AuthActions(client).login("ada", "correct horse battery staple")
    page = client.get("/").get_data(as_text=True)
    assert "encrypted</span>" in page and f"/backups/{name}/download" in page
    assert "age -d -i key.txt FILE.dump.age &gt; FILE.dump" in page and "pg_restore -d DB FILE.dump" in page
    confirm = client.get(f"/backups/{name}/restore").get_data(as_text=True)
    assert 'id="encryption"' in confirm and manifest_of(encrypted_app, name)["encryption"]["recipients"][0] in confirm
    download = client.get(f"/backups/{name}/download")
    assert download.status_code == 200
    assert download.get_data() == storage_of(encrypted_app).get_bytes(name)  # as stored: never decrypted


def test_restore_and_verify_of_an_encrypted_backup_bring_back_the_data(encrypted_app, admin_headers, target_db):
    at_backup = table_fingerprint(target_db)
    name = backed_up(encrypted_app)["filename"]
    change_live(target_db)

    client = encrypted_app.test_client()
    AuthActions(client).login("ada", "correct horse battery staple")
    verify = client.post(f"/backups/{name}/verify", data={"csrf_token": AuthActions(client).csrf_token("/")})
    assert verify.status_code == 303
    run_jobs_for(encrypted_app)
    report = json.loads(storage_of(encrypted_app).get_bytes(name + ".verified.json"))
    assert report["checksum_verified"] is True
    assert report["rows"] == {f"public.{t}": n for t, (n, _) in at_backup.items()}

    status = restore_through_api(encrypted_app, client, admin_headers, name)
    assert status["status"] == "finished", status["error"]
    assert status["result"]["verified"] is True
    assert table_fingerprint(target_db) == at_backup


def test_a_worker_without_the_key_fails_the_restore_and_touches_nothing(
    make_app, key_a, key_b, target_db, pg_admin, token_for
):
    """Backups encrypted to key A; the worker holds only key B."""
    (_, public_a), (path_b, _) = key_a, key_b
    app = make_app(BACKUP_ENCRYPTION_RECIPIENTS=public_a, BACKUP_ENCRYPTION_IDENTITY_FILE=str(path_b))
    from app.accounts.people import create_user

    with app.app_context():
        create_user("ada", "admin", "correct horse battery staple", created_by="test")
    name = backed_up(app)["filename"]
    change_live(target_db)
    before = table_fingerprint(target_db)
    job_id = restore_api(app.test_client(), token_for("ada"), name).get_json()["job_id"]
    run_jobs_for(app)
    status = assert_failed_and_unchanged(app, job_id, target_db, pg_admin, before)
    assert f"this backup is encrypted to {public_a}, and none of the worker's keys matches" in status["error"]
    assert "was not touched" in status["error"]


def test_a_corrupted_ciphertext_is_refused_by_the_checksum_before_anything_is_touched(
    encrypted_app, admin_headers, target_db, pg_admin
):
    name = backed_up(encrypted_app)["filename"]
    change_live(target_db)
    before = table_fingerprint(target_db)
    storage = storage_of(encrypted_app)
    data = bytearray(storage.get_bytes(name))
    data[len(data) // 2] ^= 0xFF  # same size, one flipped byte inside an encrypted chunk
    storage.put_bytes(name, bytes(data))
    job_id = restore_api(encrypted_app.test_client(), admin_headers, name).get_json()["job_id"]
    run_jobs_for(encrypted_app)
    status = assert_failed_and_unchanged(encrypted_app, job_id, target_db, pg_admin, before, "checksum mismatch")
    assert "nothing was changed" in status["error"]


def test_after_a_rotation_backups_made_with_the_old_key_still_restore(
    make_app, key_a, key_b, tmp_path, target_db, token_for
):
    (path_a, public_a), (path_b, public_b) = key_a, key_b
    before_rotation = make_app(BACKUP_ENCRYPTION_RECIPIENTS=public_a, BACKUP_ENCRYPTION_IDENTITY_FILE=str(path_a))
    old = backed_up(before_rotation)["filename"]
    at_old = table_fingerprint(target_db)
    change_live(target_db)

    # The README's steps: the new key's recipient replaces the old one, the identity file keeps both.
    both = identity_file(tmp_path, "identities.txt", path_a, path_b)
    app = make_app(BACKUP_ENCRYPTION_RECIPIENTS=public_b, BACKUP_ENCRYPTION_IDENTITY_FILE=str(both))
    new = backed_up(app)["filename"]
    assert manifest_of(app, old)["encryption"]["recipients"] == [public_a]
    assert manifest_of(app, new)["encryption"]["recipients"] == [public_b]
    stored_new = storage_of(app).get_bytes(new)
    with pytest.raises(subprocess.CalledProcessError):  # the new backup is for key B only
        subprocess.run(["age", "-d", "-i", str(path_a)], input=stored_new, capture_output=True, check=True)

    from app.accounts.people import create_user

    with app.app_context():
        create_user("ada", "admin", "correct horse battery staple", created_by="test")
    status = restore_through_api(app, app.test_client(), token_for("ada"), old)
    assert status["status"] == "finished", status["error"]
    assert table_fingerprint(target_db) == at_old


def test_a_plain_backup_made_before_encryption_was_turned_on_still_restores(make_app, key_a, target_db, token_for):
    plain_app = make_app()
    old = backed_up(plain_app)["filename"]
    assert old.endswith(".dump")
    at_old = table_fingerprint(target_db)
    change_live(target_db)

    path, public = key_a
    app = make_app(BACKUP_ENCRYPTION_RECIPIENTS=public, BACKUP_ENCRYPTION_IDENTITY_FILE=str(path))
    assert backed_up(app)["filename"].endswith(".dump.age")  # the safety backup, encrypted now
    from app.accounts.people import create_user

    with app.app_context():
        create_user("ada", "admin", "correct horse battery staple", created_by="test")
    status = restore_through_api(app, app.test_client(), token_for("ada"), old)
    assert status["status"] == "finished", status["error"]
    assert status["result"]["verified"] is True
    assert table_fingerprint(target_db) == at_old


def test_retention_counts_plain_and_encrypted_backups_as_one_series(make_app, key_a):
    path, public = key_a
    plain_app = make_app(MAX_BACKUP_FILES="2")
    first, second = backed_up(plain_app)["filename"], backed_up(plain_app)["filename"]
    app = make_app(MAX_BACKUP_FILES="2", BACKUP_ENCRYPTION_RECIPIENTS=public, BACKUP_ENCRYPTION_IDENTITY_FILE=str(path))
    third = backed_up(app)
    assert third["filename"].endswith(".dump.age")
    assert third["deleted"] == [first]  # the oldest of the three, whatever its kind
    fourth = backed_up(app)
    assert fourth["deleted"] == [second]
    remaining = sorted(o.name for o in storage_of(app).list_objects())
    assert remaining == sorted(f"{n}{s}" for n in (third["filename"], fourth["filename"]) for s in ("", ".json"))


def test_names_pins_and_the_trend_treat_both_kinds_as_one_series():
    from app.domain.catalog import Backup, sidecar_of
    from app.domain.naming import Owner, parse_backup_name
    from app.domain.retention import RetentionPolicy, retention_plan
    from app.domain.trends import backup_trend

    zone = ZoneInfo("Asia/Kolkata")
    owner = Owner("pharmatracker", "production")
    now = datetime(2025, 1, 15, 9, 0, tzinfo=UTC)
    names = [backup_filename("pharmatracker", "production", now - timedelta(days=d), zone) for d in range(4)]
    names[0] += ".age"
    names[2] += ".age"
    parsed = parse_backup_name(names[0])
    assert parsed is not None and parsed.created_at(zone) == now
    assert sidecar_of(names[0] + ".json") == (names[0], ".json")
    assert sidecar_of(names[0] + ".pin") == (names[0], ".pin")
    backups = [
        Backup(n, 1000, now - timedelta(days=d), now - timedelta(days=d), "pharmatracker", "production",
               has_manifest=True, pinned=(d == 3))
        for d, n in enumerate(names)
    ]  # fmt: skip
    assert all(owner.owns(b) for b in backups)
    policy = RetentionPolicy(newest=2)
    plan = {d.backup.filename: d.keep for d in retention_plan(backups, owner, policy, zone, trusted=lambda _: True)}
    assert plan == {names[0]: True, names[1]: True, names[2]: False, names[3]: True}  # the oldest is pinned
    assert [p.filename for p in backup_trend(backups, {}, owner=owner, drop_percent=50)] == names[::-1]


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("BACKUP_ENCRYPTION_RECIPIENTS", "age1notakey", "is not an age recipient"),
        ("BACKUP_ENCRYPTION_RECIPIENTS", "ssh-ed25519 AAAAnotakey", "not a valid ssh-ed25519"),
        ("BACKUP_ENCRYPTION_RECIPIENTS_FILE", "/nonexistent/recipients.txt", "cannot read"),
    ],
)
def test_a_malformed_recipient_stops_start_up_with_one_line(app_env, variable, value, words):
    import os
    import sys

    from tests.support import ROOT as root

    env = {**{k: v for k, v in os.environ.items() if k in ("PATH", "HOME")}, **app_env, variable: value}
    run = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=root, env=env, capture_output=True, text=True)
    assert run.returncode != 0
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"configuration error: {variable}: " in lines[0] and words in lines[0], run.stderr


def test_a_private_key_given_as_recipient_is_refused_without_echoing_it(app_env, key_a):
    from app.config import ConfigError, Settings

    secret = Path(key_a[0]).read_text().split("AGE-SECRET-KEY-")[1].split()[0]
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**app_env, "BACKUP_ENCRYPTION_RECIPIENTS": "AGE-SECRET-KEY-" + secret})
    assert caught.value.variable == "BACKUP_ENCRYPTION_RECIPIENTS" and secret not in str(caught.value)


def test_an_encrypted_backup_and_restore_on_seaweedfs(seaweedfs_bucket, make_app, key_a, target_db, token_for):
    path, public = key_a
    app = make_app(**seaweedfs_bucket.env, BACKUP_ENCRYPTION_RECIPIENTS=public,
                   BACKUP_ENCRYPTION_IDENTITY_FILE=str(path))  # fmt: skip
    at_backup = table_fingerprint(target_db)
    result = backed_up(app)
    assert keys(seaweedfs_bucket) == sorted([result["filename"], result["filename"] + ".json"])
    stored = seaweedfs_bucket.client().get_object(Bucket=seaweedfs_bucket.name, Key=result["filename"])["Body"].read()
    assert stored.startswith(AGE_MAGIC) and hashlib.sha256(stored).hexdigest() == result["sha256"]
    change_live(target_db)
    from app.accounts.people import create_user

    with app.app_context():
        create_user("ada", "admin", "correct horse battery staple", created_by="test")
    status = restore_through_api(app, app.test_client(), token_for("ada"), result["filename"])
    assert status["status"] == "finished", status["error"]
    assert table_fingerprint(target_db) == at_backup


def test_an_ssh_ed25519_recipient_and_its_openssh_key_work_like_an_age_key(tmp_path):
    """The domain's stream with an admin's ssh key: encrypted to the public key, opened by the private one."""
    from app.adapters import encryption

    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ada@laptop", "-f", str(key)], check=True)
    (recipient,) = encryption.parse_recipients(key.with_suffix(".pub").read_text())
    assert recipient.startswith("ssh-ed25519 ") and "ada@laptop" not in recipient
    plain_bytes = b"PGDMP" + bytes(range(256)) * 1000
    out, plain = bytearray(), encryption.Digest()
    encryption.encrypt_stream(iter([plain_bytes[:1000], plain_bytes[1000:]]), (recipient,), out.extend, plain)
    assert plain.hexdigest() == hashlib.sha256(plain_bytes).hexdigest() and not out.startswith(b"PGDMP")
    decrypted = subprocess.run(["age", "-d", "-i", str(key)], input=bytes(out), capture_output=True, check=True)
    assert decrypted.stdout == plain_bytes
    back, stored = bytearray(), encryption.Digest()
    encryption.decrypt_stream(iter([bytes(out)]), encryption.load_identities(str(key)), back.extend, stored)
    assert bytes(back) == plain_bytes and stored.size == len(out)


@pytest.mark.parametrize("where", ["s3", "folder"])
def test_an_encrypted_backup_whose_pg_dump_fails_leaves_nothing_and_says_why(
    where, request, make_app, key_a, target_db
):
    """age writes its header before pg_dump's first byte; the failure still aborts the upload."""
    overrides = request.getfixturevalue("s3_server") if where == "s3" else {}
    role = request.getfixturevalue("limited_role")  # a role that may connect but not read: pg_dump fails for real
    app = make_app(DATABASE_URL=f"postgresql://{role}@127.0.0.1:5432/{target_db}",
                   BACKUP_ENCRYPTION_RECIPIENTS=key_a[1], **overrides)  # fmt: skip
    status = backup_run_in_process(app)
    assert status["status"] == "failed"
    assert "pg_dump failed" in status["error"] and "permission denied" in status["error"]
    assert leftovers(app) == NOTHING_LEFT


def test_an_encrypted_backup_past_its_timeout_is_stopped_and_leaves_nothing(make_app, key_a, target_db, pg_admin):
    """The timeout fires while pyrage waits for pg_dump's output: it is reported as the timeout, not as age's error."""
    app = make_app(JOB_TIMEOUT_SECONDS="5", BACKUP_ENCRYPTION_RECIPIENTS=key_a[1])
    status = backup_behind_a_lock(app, target_db)
    assert status["status"] == "failed"
    assert status["error"] == "made no progress for 5 s (JOB_TIMEOUT_SECONDS); nothing was kept"
    assert leftovers(app) == NOTHING_LEFT


def test_the_decrypted_archives_checksum_is_checked_too(encrypted_app, admin_headers, target_db, pg_admin):
    """Another age file under the name, with a manifest edited to its sha256 and size: the plain check refuses it."""
    first = backed_up(encrypted_app)["filename"]
    change_live(target_db)
    other = backed_up(encrypted_app)["filename"]  # a different database state, encrypted to the same key
    before = table_fingerprint(target_db)
    storage = storage_of(encrypted_app)
    swapped = storage.get_bytes(other)
    manifest = manifest_of(encrypted_app, first)
    manifest.update(sha256=hashlib.sha256(swapped).hexdigest(), size=len(swapped))
    storage.put_bytes(first, swapped)
    storage.put_bytes(first + ".json", json.dumps(manifest).encode())
    job_id = restore_api(encrypted_app.test_client(), admin_headers, first).get_json()["job_id"]
    run_jobs_for(encrypted_app)
    status = assert_failed_and_unchanged(encrypted_app, job_id, target_db, pg_admin, before, "checksum mismatch")
    assert "decrypted archive's sha256" in status["error"]


def test_an_age_file_made_by_hand_without_a_manifest_restores_with_a_warning(
    encrypted_app, admin_headers, key_a, target_db, tmp_path
):
    """An old plain dump encrypted with the age CLI and put in the bucket by hand."""
    public = key_a[1]
    expected = table_fingerprint(target_db)
    plain = tmp_path / "old.dump"
    subprocess.run(["pg_dump", "-Fc", "-h", "127.0.0.1", "-U", "postgres", "-f", str(plain), target_db], check=True)
    encrypted = subprocess.run(["age", "-r", public, str(plain)], capture_output=True, check=True).stdout
    zone = ZoneInfo("Asia/Kolkata")
    name = backup_filename("pharmatracker", "staging", datetime.now(UTC) - timedelta(days=2), zone) + ".age"
    storage_of(encrypted_app).put_bytes(name, encrypted)
    backed_up(encrypted_app)  # the safety backup
    change_live(target_db)
    status = restore_through_api(encrypted_app, encrypted_app.test_client(), admin_headers, name)
    assert status["status"] == "finished", status["error"]
    assert status["result"]["verified"] is False and "no manifest" in status["warning"]
    assert table_fingerprint(target_db) == expected


def test_a_broken_identity_file_is_named_by_line_never_quoted(tmp_path, key_a):
    from app.adapters import encryption

    good = key_a[0].read_text()
    secret = next(line for line in good.splitlines() if line.startswith("AGE-SECRET-KEY-"))
    broken = tmp_path / "broken.txt"
    broken.write_text(f"# a comment\n{secret}\n{secret[:-3]}xyz\n")
    with pytest.raises(encryption.EncryptionError) as caught:
        encryption.load_identities(str(broken))
    assert str(caught.value) == f"line 3 of the identity file {broken} is not an age identity"
    with pytest.raises(encryption.EncryptionError, match="cannot read the identity file"):
        encryption.load_identities(str(tmp_path / "missing.txt"))
    assert len(encryption.load_identities(str(key_a[0]))) == 1
