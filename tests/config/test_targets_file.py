"""TARGETS_FILE itself: a malformed one is refused in one line, secrets never show, without one nothing changes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.config.targets import PASSKEYS, make_person, token
from tests.support import ROOT
from tests.support.processes import child_env


@pytest.mark.parametrize(
    ("table", "env", "expected"),
    [
        ('environment = "x"\nbucket = "y"', {}, "target 'bad', key 'bucket': unknown key"),
        ('password = "hunter22"', {}, "target 'bad', key 'password': a secret is never written in the file"),
        ('restore_passkey = "open sesame"', {}, "target 'bad', key 'restore_passkey': a secret is never written"),
        ("", {"URL": "postgresql://u:hunter22@h/db"}, "target 'bad', key 'database_url': holds a password"),
        ('password_env = "BAD_DB_PASSWORD"', {}, "target 'bad', key 'password_env': names the environment "
                                                 "variable BAD_DB_PASSWORD, which is not set"),
        ('backup_schedule = "every day"', {}, "target 'bad', key 'backup_schedule': must be a cron expression"),
        ('encryption_recipients = ["age1notakey"]', {}, "target 'bad', key 'encryption_recipients': "),
    ],
)
def test_a_malformed_targets_file_is_refused_with_one_line(tmp_path, table, env, expected):
    from app.config import ConfigError, Settings

    url = env.get("URL", "postgresql://postgres@127.0.0.1:5432/db")
    path = tmp_path / "targets.toml"
    path.write_text(f'[targets.bad]\ndatabase_url = "{url}"\nstorage_url = "file:///tmp/x"\n{table}\n')
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"TARGETS_FILE": str(path), "SECRET_KEY": "k"})
    message = str(raised.value)
    assert message.startswith("TARGETS_FILE: " + expected) and "\n" not in message
    assert "hunter22" not in message and "open sesame" not in message


def test_two_targets_whose_backups_would_share_names_are_refused(tmp_path):
    from app.config import ConfigError, Settings

    path = tmp_path / "targets.toml"
    path.write_text("".join(f'[targets.{name}]\nenvironment = "staging"\ndatabase_url = "postgresql://h/app"\n'
                            'storage_url = "s3://bucket/app"\n' for name in ("one", "two")))  # fmt: skip
    with pytest.raises(ConfigError, match="target 'two', key 'app_name': its backups would have the same names as "
                                          "target 'one'"):  # fmt: skip
        Settings.from_env({"TARGETS_FILE": str(path), "SECRET_KEY": "k"})


def test_a_malformed_targets_file_stops_start_up_with_one_line(tmp_path, app_env):
    path = tmp_path / "targets.toml"
    path.write_text('[targets.prod]\ndatabase_url = "postgresql://backup:s3cret@db/app"\nstorage_url = "file:///x"\n')
    env = {**app_env, "TARGETS_FILE": str(path)}
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "targets", "list"], cwd=ROOT,
                          env=child_env(env), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert lines == ["pgconsole: configuration error: TARGETS_FILE: target 'prod', key 'database_url': holds a "
                     "password; put it in an environment variable named by password_env"]  # fmt: skip
    assert "s3cret" not in done.stdout + done.stderr


def test_targets_list_names_each_target_and_never_a_secret(console, targets_env, databases):
    env = {**targets_env, "STAGING_DB_PASSWORD": "never-printed-7"}
    path = Path(targets_env["TARGETS_FILE"])
    passkey = 'restore_passkey_env = "STAGING_PASSKEY"'
    path.write_text(path.read_text().replace(passkey, passkey + '\npassword_env = "STAGING_DB_PASSWORD"', 1))
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "targets", "list"], cwd=ROOT,
                          env=child_env(env), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["staging (default)", "production", "reports"]
    staging = lines[0].split("\t")
    assert staging[1:3] == ["staging", f"127.0.0.1:5432/{databases['staging']}"]
    assert staging[3].startswith("s3://") and staging[4] == "no backup yet"
    for secret in ("never-printed-7", *PASSKEYS.values(), targets_env["AWS_SECRET_ACCESS_KEY"]):
        assert secret not in done.stdout + done.stderr


def test_without_a_targets_file_there_is_one_target_and_the_console_is_as_before(app, make_user, runner):
    settings = app.config["SETTINGS"]
    assert [t.name for t in settings.targets] == ["staging"] and settings.default_target == "staging"
    client, _ = make_person(app, "ada", "admin")
    home = client.get("/").get_data(as_text=True)
    assert "<h1>Backups</h1>" in home and "/targets/" not in home and 'class="targets"' not in home
    assert client.get("/targets/staging/").status_code == 200  # the target's own address works too
    listed = client.get("/api/targets", headers=token(app, "ada")).get_json()
    assert [(t["name"], t["environment"]) for t in listed] == [("staging", "staging")]
    out = runner.invoke(args=["targets", "list"]).output
    assert out.startswith("staging (default)\tstaging\t127.0.0.1:5432/") and "test-passkey-0451" not in out
