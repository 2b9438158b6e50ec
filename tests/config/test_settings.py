"""Settings from the environment: a bad one names the variable and the problem in one line; the badge shows APP_ENV."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app.config import ConfigError, Settings
from tests.support import ROOT
from tests.support.processes import child_env

BASE_ENV = {"DATABASE_URL": "postgresql://postgres@127.0.0.1/x"}


@pytest.mark.parametrize(
    ("env", "variable", "words"),
    [
        ({}, "DATABASE_URL", "is not set"),
        ({"DATABASE_URL": "mysql://h/db"}, "DATABASE_URL", "postgresql://"),
        ({"DATABASE_URL": "postgresql://h:port/db"}, "DATABASE_URL", "port"),
        ({**BASE_ENV, "MAX_BACKUP_FILES": "many"}, "MAX_BACKUP_FILES", "whole number"),
        ({**BASE_ENV, "MAX_BACKUP_FILES": "0"}, "MAX_BACKUP_FILES", "at least 1"),
        ({**BASE_ENV, "JOB_TIMEOUT_SECONDS": "-3"}, "JOB_TIMEOUT_SECONDS", "at least"),
        ({**BASE_ENV, "APP_ENV": "production"}, "SECRET_KEY", "required"),
        ({**BASE_ENV, "APP_ENV": "prod uction"}, "APP_ENV", "letters"),
        ({**BASE_ENV, "DISPLAY_TIMEZONE": "Mars/Olympus"}, "DISPLAY_TIMEZONE", "unknown time zone"),
        ({**BASE_ENV, "BACKUP_STORAGE_URL": "ftp://x"}, "BACKUP_STORAGE_URL", "s3://"),
        ({**BASE_ENV, "BACKUP_STORAGE_URL": "s3://"}, "BACKUP_STORAGE_URL", "bucket"),
        ({**BASE_ENV, "BACKUP_COMPRESSION": "rar"}, "BACKUP_COMPRESSION", "gzip"),
        ({**BASE_ENV, "RESTORE_PASSKEY_HASH": "abc"}, "RESTORE_PASSKEY_HASH", "64 hex"),
        ({**BASE_ENV, "SESSION_COOKIE_SECURE": "maybe"}, "SESSION_COOKIE_SECURE", "true or false"),
        ({"DB_DATABASE": "x", "DB_PORT": "99999"}, "DB_PORT", "between"),
        ({**BASE_ENV, "S3_ADDRESSING_STYLE": "dns"}, "S3_ADDRESSING_STYLE", "auto, path, virtual"),
    ],
)
def test_a_bad_setting_names_the_variable_and_the_problem(env, variable, words, tmp_path):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env, instance_path=str(tmp_path))
    assert caught.value.variable == variable
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)


def test_seed_variable_names_are_accepted(tmp_path):
    settings = Settings.from_env(
        {
            "DB_HOST": "db.internal",
            "DB_PORT": "6543",
            "DB_USERNAME": "app",
            "DB_PASSWORD": "pw",
            "DB_DATABASE": "pharmatracker",
            "AWS_ACCESS_KEY": "AKIA1",
            "AWS_SECRET_KEY": "s3cr3t",
        },
        instance_path=str(tmp_path),
    )
    assert (settings.target.host, settings.target.port, settings.target.user) == ("db.internal", 6543, "app")
    assert settings.app_name == "pharmatracker"  # defaults to the database's name
    assert settings.aws_access_key_id == "AKIA1" and settings.aws_secret_access_key == "s3cr3t"
    assert (settings.max_backup_files, settings.recent_check_minutes, settings.job_timeout_seconds) == (30, 5, 300)
    assert settings.display_timezone == "Asia/Kolkata" and settings.aws_region == "ap-south-1"
    assert "s3cr3t" not in repr(settings) and "pw" not in repr(settings.target)


@pytest.mark.parametrize(
    ("style", "url_starts"), [("path", "https://s3.example.net/acme-backups/db/"), ("virtual", "https://acme-backups.s3.example.net/db/")]
)
def test_s3_addressing_style_decides_where_a_download_link_points(style, url_starts, tmp_path):
    """Stores without per-bucket host names (MinIO, SeaweedFS, an IP address) need path style."""
    from app.services.clients import storage_for

    settings = Settings.from_env(
        {**BASE_ENV, "BACKUP_STORAGE_URL": "s3://acme-backups/db", "S3_ENDPOINT_URL": "https://s3.example.net",
         "AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": "s3cr3t", "S3_ADDRESSING_STYLE": style.upper()},
        instance_path=str(tmp_path),
    )  # fmt: skip
    link = storage_for(settings).download_url("x.dump")
    assert link.startswith(url_starts + "x.dump?")


def test_cli_start_with_a_bad_setting_prints_one_line_and_no_traceback(tmp_path):
    env = child_env(
        {
            "DATABASE_URL": "postgresql://postgres@127.0.0.1/x",
            "MAX_BACKUP_FILES": "lots",
            "INSTANCE_PATH": str(tmp_path),
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "users", "create", "x", "--role", "admin"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "MAX_BACKUP_FILES" in done.stderr and "whole number" in done.stderr
    assert "Traceback" not in done.stderr


def test_environment_badge_is_on_every_page(make_app):
    app = make_app(APP_ENV="production")
    page = app.test_client().get("/login").get_data(as_text=True)
    assert 'class="env env-red"' in page and ">production<" in page  # ENVIRONMENT_COLORS' default
