"""Hostile backup names: parsing and checking never raise, and only plain names are accepted."""

from __future__ import annotations

import re
import string
import unicodedata
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from app.adapters.storage import InvalidName, check_name
from app.domain.naming import BackupName, backup_filename, parse_backup_name
from tests.web.bad_input.inputs import (
    ANY_CHAR,
    CONTROL,
    ZONE,
    fuzz,
    hostile_text,
    name_like,
    repeated,
    with_control,
)

pytestmark = pytest.mark.web_only  # sign-in, roles and forms: the target database is never reached


@fuzz(600)
@given(st.one_of(st.text(ANY_CHAR, max_size=400), name_like, repeated(ANY_CHAR), with_control(name_like)))
@example("pharmatracker-production-on-2025-01-15-at-02-30-23-PM-IST.dump")
@example("a-" * 20_000 + "b")  # a long run of separators: no catastrophic backtracking
@example("pharmatracker-staging-on-2025-02-30-at-12-00-00-AM-IST.dump")
@example("pharmatracker-staging-on-2025-01-01-at-12-00-61-AM-IST.dump")
def test_parse_backup_name_never_raises_and_round_trips_sane_names(text):
    parsed = parse_backup_name(text)
    event("parsed" if parsed else "not a backup name")
    if parsed is None:
        return
    assert isinstance(parsed, BackupName)
    assert text.endswith(".dump") and parsed.app_name and "\n" not in parsed.app_name
    assert re.fullmatch(r"[A-Za-z0-9_]+", parsed.environment)
    assert re.fullmatch(r"[A-Za-z0-9+\-]{1,10}", parsed.zone_abbreviation)
    sane = {"IST": ZONE, "UTC": ZoneInfo("UTC"), "GMT": ZoneInfo("GMT")}.get(parsed.zone_abbreviation)
    if sane is not None and parsed.local_time.year >= 1946:  # Asia/Kolkata is IST all year since 1945
        at = parsed.local_time.replace(tzinfo=sane)
        assert backup_filename(parsed.app_name, parsed.environment, at, sane) == text
        assert parsed.created_at(ZONE) == at.astimezone(UTC)


@fuzz(300)
@given(
    app_name=st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,80}", fullmatch=True),  # APP_NAME, less a leading "."
    environment=st.from_regex(r"[A-Za-z0-9_]{1,20}", fullmatch=True),  # what APP_ENV allows
    at=st.datetimes(min_value=datetime(1950, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.just(UTC)),
    zone=st.sampled_from([ZONE, ZoneInfo("UTC"), ZoneInfo("America/New_York"), ZoneInfo("Australia/Lord_Howe")]),
)
def test_every_name_the_console_writes_reads_back_and_is_a_plain_name(app_name, environment, at, zone):
    name = backup_filename(app_name, environment, at, zone)
    assert check_name(name) == name
    parsed = parse_backup_name(name)
    assert parsed is not None
    assert (parsed.app_name, parsed.environment) == (app_name, environment)
    assert parsed.created_at(zone) == at.replace(microsecond=0)


@fuzz(300)
@given(
    name=name_like,
    zone=st.sampled_from([ZONE, ZoneInfo("UTC"), ZoneInfo("America/New_York"), ZoneInfo("Pacific/Kiritimati")]),
)
def test_created_at_never_raises_within_years_1001_to_9998(name, zone):
    parsed = parse_backup_name(name)
    if parsed is None or not 1001 <= parsed.local_time.year <= 9998:
        return
    created = parsed.created_at(zone)
    assert created is None or created.tzinfo is not None


def plain(name: str) -> bool:
    return (
        0 < len(name.encode("utf-8", "surrogatepass")) <= 255  # a file name's limit is in bytes
        and not name.startswith(".")
        and "/" not in name
        and "\\" not in name
        # control, invisible formatting (e.g. right-to-left override), lone surrogates, line breaks
        and not any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in name)
    )


@fuzz(600)
@given(st.one_of(st.text(ANY_CHAR, max_size=300), hostile_text, repeated(ANY_CHAR, low=250, high=300), name_like))
def test_check_name_accepts_exactly_the_plain_names(name):
    try:
        accepted = check_name(name)
    except InvalidName as exc:
        assert not plain(name), f"refused a plain name: {exc}"
        assert "is not a valid backup file name" in str(exc)
    else:
        assert accepted == name
        assert plain(name), f"accepted {name[:80]!r}"


@fuzz(400)
@given(
    base=st.text(max_size=60),
    spoiler=st.sampled_from(["slash", "backslash", "dot", "control", "long"]),
    where=st.integers(0, 99),
    control=CONTROL,
)
def test_check_name_refuses_any_name_with_a_separator_leading_dot_control_char_or_over_255(
    base, spoiler, where, control
):
    at = where % (len(base) + 1)
    name = {
        "slash": base[:at] + "/" + base[at:],
        "backslash": base[:at] + "\\" + base[at:],
        "dot": "." + base,
        "control": base[:at] + control + base[at:],
        "long": (base or "x") * (256 // len(base or "x") + 1),
    }[spoiler]
    with pytest.raises(InvalidName):
        check_name(name)


@fuzz(200)
@given(st.text(string.ascii_letters + string.digits + "-_.+@ ()é€", min_size=1, max_size=255))
def test_check_name_keeps_plain_names_unchanged(name):
    if name.startswith("."):
        name = "x" + name[1:]
    assert check_name(name) == name


def test_bug_check_name_refuses_lone_surrogates():
    with pytest.raises(InvalidName):
        check_name("\ud800.dump")  # storage then raises UnicodeEncodeError, not StorageError


def test_bug_every_app_name_the_settings_accept_makes_storable_backup_names(tmp_path):
    from app.config import ConfigError, Settings

    env = {"DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/x", "INSTANCE_PATH": str(tmp_path)}
    with pytest.raises(ConfigError):  # it used to be accepted, and then every backup failed
        Settings.from_env({**env, "APP_NAME": ".hidden"})
    config = Settings.from_env({**env, "APP_NAME": "my-app.v2"})
    name = backup_filename(config.app_name, config.app_env, datetime.now(UTC), config.zone)
    assert check_name(name) == name
