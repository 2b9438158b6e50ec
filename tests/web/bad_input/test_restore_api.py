"""Bad input, found by hypothesis: hostile names, JSON bodies, path segments, form fields and headers.

Every answer is a 4xx with a clear message (or a normal page), never a 500, and nothing is ever
enqueued. Each test builds its app and clients once and reuses them across examples. The app is
told not to propagate exceptions, so a crash shows up as the 500 a production server would send
(its traceback is in the captured log).

The tests at the end pin app bugs this file found (each was an xfail until fixed).
"""

from __future__ import annotations

import json
import re
import string
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from urllib.parse import quote, urlencode, urlsplit
from zoneinfo import ZoneInfo

import pytest
import redis as redis_lib
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from app.adapters.storage import InvalidName, check_name
from app.domain.naming import BackupName, backup_filename, parse_backup_name
from tests.helpers import PASSWORD, AuthActions

pytestmark = pytest.mark.web_only  # sign-in, roles and forms: the target database is never reached

PASSKEY = "test-passkey-0451"  # the app_env fixture's RESTORE_PASSKEY
ZONE = ZoneInfo("Asia/Kolkata")
ROLES = ("viewer", "operator", "admin")
API_ERRORS = {400, 403, 404, 409, 413, 429, 503}
# gunicorn's check of a response header value (gunicorn/http/wsgi.py HEADER_VALUE_RE): anything else is a 500.
HEADER_VALUE = re.compile(r"[ \t\x21-\x7e\x80-\xff]*")


def fuzz(examples: int):
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# --------------------------------------------------------------------------- strategies

ANY_CHAR = st.characters(codec=None, exclude_categories=())  # everything, lone surrogates too
NO_SURROGATE = st.characters(codec="utf-8")  # what a browser or an HTTP client can send
CONTROL = st.sampled_from([chr(c) for c in range(32)] + ["\x7f", "\x85", "\u2028", "\u2029"])
TRAVERSAL = [
    "../x.dump",
    "../../etc/passwd",
    "..",
    ".",
    "./x.dump",
    "%2e%2e%2f",
    "%2e%2e%2fx.dump",
    "..%2fx.dump",
    "..%2F..%2Fetc%2Fpasswd",
    "%252e%252e%252fx.dump",
    "..\\x.dump",
    "..%5cx.dump",
    "....//x.dump",
    "..%c0%afx.dump",
    "\u2024\u2024/x.dump",  # one-dot leaders
    "\uff0e\uff0e\uff0fx.dump",  # full-width dot dot slash
    "/etc/passwd",
    "\\\\server\\share\\x.dump",
    "file:///etc/passwd",
    "s3://another-bucket/x.dump",
    "x.dump\x00.txt",
    "x.dump\r\nSet-Cookie: a=b",
    ".partial-0123456789abcdef",
    ".hidden.dump",
]


def repeated(alphabet=NO_SURROGATE, low: int = 256, high: int = 12_000):
    """A long string (up to 12k characters) built cheaply: one character repeated."""
    return st.builds(lambda c, n: c * n, alphabet, st.integers(low, high))


def with_control(base: st.SearchStrategy[str]):
    return st.builds(
        lambda s, c, i: s[: i % (len(s) + 1)] + c + s[i % (len(s) + 1) :], base, CONTROL, st.integers(0, 99)
    )


hostile_text = st.one_of(
    st.text(max_size=300),
    st.sampled_from(TRAVERSAL),
    with_control(st.text(max_size=40)),
    repeated(low=256, high=6000),
)


def mostly(usual: st.SearchStrategy, other: st.SearchStrategy) -> st.SearchStrategy:
    """`usual` two times in three (st.one_of weighs its flattened branches alike)."""
    return st.sampled_from([usual, usual, other]).flatmap(lambda chosen: chosen)


# Names close to the seed's format, with every part sometimes out of range or malformed.
def seed_style(app: str, env: str, at: datetime, tz: str, suffix: str) -> str:
    return f"{app}-{env}-on-{at.year:04d}-{at:%m-%d}-at-{at:%I-%M-%S-%p}-{tz}{suffix}"


well_formed = st.builds(
    seed_style,
    st.one_of(st.from_regex(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,20}", fullmatch=True), st.text(max_size=20)),
    st.one_of(st.from_regex(r"[A-Za-z0-9_]{1,12}", fullmatch=True), st.text(max_size=8)),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    st.one_of(st.sampled_from(["IST", "UTC", "GMT", "LMT", "EST", "+0530", "-03", "Z" * 11]), st.text(max_size=12)),
    st.sampled_from([".dump", ".dump", ".dump", ".DUMP", ".dump\n", ".dump.json", ""]),
)
# ...and each of them with a few characters somewhere replaced: out-of-range fields, stray text.
name_like = st.one_of(
    well_formed,
    st.builds(
        lambda name, at, cut, junk: name[: at % (len(name) + 1)] + junk + name[at % (len(name) + 1) + cut :],
        well_formed,
        st.integers(0, 80),
        st.integers(0, 3),
        st.one_of(st.text("0123456789-", max_size=3), st.text(max_size=3)),
    ),
)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=40))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=15,
)


# --------------------------------------------------------------------------- the console under test


@dataclass
class Console:
    app: object
    client: object  # a browser session signed in as ada (admin)
    api: object  # a client without cookies: bearer token only
    headers: dict[str, str]
    redis: redis_lib.Redis
    csrf: str  # the signed-in session's CSRF token

    @property
    def namespace(self) -> str:
        return self.app.config["SETTINGS"].redis_namespace

    def queued(self) -> int:
        from rq import Queue

        return Queue(self.namespace, connection=self.redis).count

    def reset_limits(self) -> None:
        for key in self.redis.scan_iter(match=f"{self.namespace}:ratelimit:*"):
            self.redis.delete(key)

    def storage(self):
        from app.services.clients import storage_for

        return storage_for(self.app.config["SETTINGS"])


@pytest.fixture
def console(app, make_user, token_for):
    app.config["PROPAGATE_EXCEPTIONS"] = False  # a crash answers 500, as in production
    make_user("ada", "admin")
    headers = token_for("ada")
    client = app.test_client()
    auth = AuthActions(client)
    assert auth.login("ada").status_code == 302
    redis = redis_lib.Redis.from_url(app.config["SETTINGS"].redis_url)
    yield Console(app, client, app.test_client(), headers, redis, auth.csrf_token("/"))
    redis.close()


def now_name(env: str, minutes_ago: float = 0, app_name: str = "pharmatracker") -> str:
    return backup_filename(app_name, env, datetime.now(UTC) - timedelta(minutes=minutes_ago), ZONE)


@pytest.fixture
def stored(console):
    """What the bucket holds: an old backup of this environment, a fresh one of another, a foreign file.

    There is deliberately no recent backup of this environment, so even the right passkey can never
    get a restore enqueued: whatever a test sends, the queue must stay empty.
    """
    names = {
        "old": now_name("staging", minutes_ago=120),
        "other_env": now_name("production", minutes_ago=1),
        "foreign": "notes.txt",
    }
    storage = console.storage()
    for name in names.values():
        storage.put_bytes(name, b"not really an archive")
    storage.put_bytes(names["old"] + ".json", b"{}")
    return names


def assert_api_error(response, allowed=API_ERRORS):
    body = response.get_data()[:300]
    assert response.status_code in allowed, (response.status_code, body)
    payload = response.get_json(silent=True)
    assert isinstance(payload, dict), body
    assert isinstance(payload.get("error"), str) and payload["error"].strip(), body


def assert_page(response, allowed):
    assert response.status_code in allowed, (response.status_code, response.get_data()[:300])
    assert response.mimetype == "text/html"
    if response.status_code >= 400:  # the error page names the problem
        assert "<html" in response.get_data(as_text=True).lower()


def post_form(client, url: str, data: dict, allowed: set[int]):
    """Post a form; a body past MAX_CONTENT_LENGTH (64 KiB) may also be answered 413."""
    response = client.post(url, data=data)
    too_big = len(urlencode(data).encode()) > 64 * 1024 - 1024  # the test client's encoding differs a little
    assert response.status_code in (allowed | {413} if too_big else allowed), (
        response.status_code,
        response.get_data()[:300],
    )
    if response.status_code >= 400:
        assert_page(response, {response.status_code})
    return response


# --------------------------------------------------------------------------- naming: parse and check


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


# --------------------------------------------------------------------------- POST /api/setting/restore


@fuzz(150)
@given(
    body=st.one_of(
        json_values,
        st.fixed_dictionaries({"filename": json_values, "passkey": json_values}),
        st.fixed_dictionaries(
            {"filename": json_values, "passkey": json_values},
            optional={"database": json_values, "target": json_values, "dbname": json_values, "url": json_values},
        ),
    )
)
def test_restore_api_answers_any_json_with_a_json_error(console, stored, body):
    response = console.api.post("/api/setting/restore", headers=console.headers, json=body)
    assert_api_error(response)
    assert console.queued() == 0


def filenames(names):
    """Names the restore API may be sent: listed, almost listed, not listed, hostile, 10 kB."""
    listed = [*names.values()]
    return st.one_of(
        st.sampled_from(listed),
        st.sampled_from(
            [
                now_name("qa"),  # other environments' files that do not exist
                now_name("production", minutes_ago=30),
                now_name("staging", app_name="someone-else"),
                names["old"] + ".json",  # a sidecar: in the store, not listed
                "./" + names["old"],
                names["old"] + "/",
                "/" + names["old"],
                " " + names["old"],
                names["old"].upper(),
                names["old"] + "\x00",
                quote(names["old"], safe=""),
                "../" + names["old"],
                "..%2f" + names["old"],
            ]
        ),
        st.builds(lambda t, n: t.replace("x.dump", n), st.sampled_from(TRAVERSAL), st.sampled_from(listed)),
        hostile_text,
        repeated(low=10_000, high=10_240),  # 10 kB
    )


passkeys = st.one_of(
    st.just(PASSKEY),
    st.text(min_size=1, max_size=60),
    with_control(st.just(PASSKEY)),
    st.sampled_from([PASSKEY + " ", " " + PASSKEY, PASSKEY.upper(), PASSKEY[:-1], "", " "]),
    repeated(low=10_000, high=10_240),
)
wrong_types = st.one_of(
    st.integers(), st.floats(), st.booleans(), st.none(), st.lists(st.text(max_size=5), max_size=2), st.just({})
)


@fuzz(200)
@given(
    data=st.data(),
    fresh_limit=st.booleans(),
    mistype=st.sampled_from([None, None, None, None, None, "filename", "passkey"]),
)
def test_restore_api_refuses_hostile_names_and_passkeys(console, stored, data, fresh_limit, mistype):
    if fresh_limit:
        console.reset_limits()  # otherwise five wrong passkeys make every later answer a 429
    body = {"filename": data.draw(filenames(stored), "filename"), "passkey": data.draw(passkeys, "passkey")}
    if mistype:
        body[mistype] = data.draw(wrong_types, mistype)
    response = console.api.post("/api/setting/restore", headers=console.headers, json=body)
    event(f"status {response.status_code}")
    assert_api_error(response)
    if isinstance(body["filename"], str) and body["filename"] not in stored.values():
        assert response.status_code in (400, 404, 413), "a name that is not listed is never looked at further"
    assert console.queued() == 0


@fuzz(120)
@given(
    raw=st.one_of(
        st.binary(max_size=2000),
        st.text(NO_SURROGATE, max_size=300).map(str.encode),
        st.sampled_from(
            [b"", b"{", b"null", b"[]", b"\xff\xfe{\x00}", b'{"filename": "x.dump", "passkey": "y"', b"1" * 5000]
        ),
    ),
    oversize=st.one_of(st.none(), st.integers(64 * 1024 - 15, 70_000)),  # pad the body past MAX_CONTENT_LENGTH
    content_type=st.sampled_from(
        ["application/json", "application/json; charset=utf-8", "application/json; charset=latin-9", "text/plain"]
    ),
)
def test_restore_api_answers_raw_bodies_with_a_json_error(console, stored, raw, oversize, content_type):
    if oversize:
        raw = b'{"filename": "' + b"a" * oversize + b'"}'
    response = console.api.post(
        "/api/setting/restore", headers={**console.headers, "Content-Type": content_type}, data=raw
    )
    assert_api_error(response)
    if len(raw) > 64 * 1024 and content_type.startswith("application/json"):
        assert response.status_code == 413
    assert console.queued() == 0


def test_restore_api_with_restore_disabled_answers_503_or_400(console, stored, make_app):
    disabled = make_app(RESTORE_PASSKEY="")  # the same console store: ada's token works here too
    disabled.config["PROPAGATE_EXCEPTIONS"] = False
    api = disabled.test_client()

    @fuzz(40)
    @given(filename=st.one_of(filenames(stored), wrong_types), passkey=st.one_of(passkeys, wrong_types))
    def check(filename, passkey):
        response = api.post(
            "/api/setting/restore", headers=console.headers, json={"filename": filename, "passkey": passkey}
        )
        assert_api_error(response, {400, 413, 503})  # 413: control characters escape to 6 bytes each
        assert console.queued() == 0

    check()


# --------------------------------------------------------------------------- pages with hostile path segments


@fuzz(80)
@given(st.one_of(hostile_text, st.text(NO_SURROGATE, max_size=80)))
@example("")
@example("a//b.dump")
@example("x.dump/")
def test_page_routes_with_hostile_names_are_4xx(console, stored, name):
    segment = quote(name, safe="")
    data = {"csrf_token": console.csrf, "passkey": PASSKEY, "confirm": "x", "note": "n"}
    calls = [
        ("GET", f"/backups/{segment}/restore"),
        ("POST", f"/backups/{segment}/restore"),
        ("GET", f"/backups/{segment}/download"),
        ("POST", f"/backups/{segment}/pin"),
        ("POST", f"/backups/{segment}/unpin"),
        ("POST", f"/backups/{segment}/verify"),
        ("GET", f"/jobs/{segment}"),
    ]
    for method, url in calls:
        response = console.client.open(url, method=method, data=data if method == "POST" else None)
        response.close()
        if response.status_code == 308:  # the router merging "//": it stays on this site
            assert "//" in f"/{name}/", url
            assert urlsplit(response.headers["Location"]).netloc in ("", "localhost"), url
            continue
        assert_page(response, {400, 403, 404})
    api = console.api.get(f"/api/jobs/{segment}", headers=console.headers)
    if api.status_code == 308:
        assert urlsplit(api.headers["Location"]).netloc in ("", "localhost")
    else:
        assert_api_error(api, {404})
    assert console.queued() == 0


# --------------------------------------------------------------------------- forms


form_text = st.one_of(st.text(max_size=100), with_control(st.text(max_size=20)), repeated(low=5000, high=5200))


@fuzz(80)
@given(username=form_text, password=form_text, nul=st.booleans())
def test_login_form_answers_400_401_or_429(console, username, password, nul):
    anon = console.app.test_client()
    token = AuthActions(anon).csrf_token("/login")
    if nul:
        username, password = username + "\x00", "\x00" + password
    post_form(anon, "/login", {"username": username, "password": password, "csrf_token": token}, {400, 401, 429})
    assert console.queued() == 0


@fuzz(30)  # each example signs in: password hashing makes these the slowest requests
@given(
    target=st.one_of(st.text(max_size=60), st.sampled_from(TRAVERSAL), st.from_regex(r"[/\\ \t]{1,3}[a-z.:/]{0,12}"))
)
@example("//evil.example")
@example("/\\evil.example")
@example("/\t/evil.example")
@example("https://evil.example/")
@example("/%2F%2Fevil.example")
def test_sign_in_never_redirects_off_the_site(console, target):
    anon = console.app.test_client()
    token = AuthActions(anon).csrf_token("/login")
    response = anon.post("/login", data={"username": "ada", "password": PASSWORD, "next": target, "csrf_token": token})
    assert response.status_code == 302, response.get_data()[:300]
    location = response.headers["Location"]
    parts = urlsplit(location)
    assert not parts.scheme and not parts.netloc, location
    assert location.startswith("/") and not location.startswith(("//", "/\\")), location


@fuzz(80)
@given(
    username=mostly(
        st.builds(
            lambda before, core, after: before + core + after,  # surrounding blanks are stripped
            st.sampled_from(["", " ", "\t", "\u3000"]),
            st.from_regex(r"[a-z0-9_.@-]{3,12}", fullmatch=True),
            st.sampled_from(["", " ", "\n"]),
        ),
        st.one_of(form_text, st.sampled_from(["ada", "a b", "a\u200bb", "x" * 65])),
    ),
    role=mostly(st.sampled_from(ROLES), st.one_of(st.text(max_size=12), st.sampled_from(["Admin", "root", ""]))),
    # A non-empty, all-blank password is pinned by test_bug_a_blank_password_is_a_400 below.
    password=mostly(st.sampled_from(["", "a long enough password"]), form_text).filter(lambda p: not p or p.strip()),
)
def test_add_user_form_answers_303_200_or_400_and_creates_only_clean_names(console, username, role, password):
    from app.extensions import db
    from app.store.models import User

    with console.app.app_context():
        before = {u.username for u in db.session.execute(db.select(User)).scalars()}
    allowed = {303, 400} if password else {200, 400}  # no password: the page shows a set-password link
    data = {"username": username, "role": role, "password": password, "csrf_token": console.csrf}
    response = post_form(console.client, "/users", data, allowed)
    with console.app.app_context():
        after = {u.username: u.role for u in db.session.execute(db.select(User)).scalars()}
    added = set(after) - before
    event(f"status {response.status_code}")
    if response.status_code >= 400:
        assert not added
        return
    assert added == {username.strip()}, added
    (name,) = added
    assert 0 < len(name) <= 64 and not any(c.isspace() or not c.isprintable() for c in name), repr(name)
    assert after[name] == role in ROLES


# Cron-like schedules, day of month kept within 1..28 (29-31 have a test of their own below).
cron_fields = (  # (what croniter accepts, what it refuses) per field
    (["*", "0", "59", "*/5", "1-5", "1,2,3"], ["60", "-1", "a"]),
    (["*", "0", "23", "*/2", "9-17"], ["24", "x"]),
    (["*", "1", "15", "28", "1-7", "L"], ["0", "32"]),  # 29-31 never come in some months: see test_bug_a_schedule
    (["*", "1", "12", "jan", "*/3"], ["13", "0"]),
    (["*", "0", "6", "7", "mon", "1-5"], ["8", "funday"]),
)
cronish = st.builds(
    lambda good, bad, spoil, sep, count: sep.join(
        [*(b if i == spoil else g for i, (g, b) in enumerate(zip(good, bad, strict=True))), "*"][:count]
    ),
    st.tuples(*(st.sampled_from(good) for good, _ in cron_fields)),
    st.tuples(*(st.sampled_from(bad) for _, bad in cron_fields)),
    st.sampled_from([None, None, None, None, 0, 1, 2, 3, 4]),
    st.sampled_from([" ", "  ", "\t", " \u3000 "]),
    st.sampled_from([5, 5, 5, 5, 4, 6]),
)


@fuzz(80)
@given(schedule=st.one_of(cronish, st.one_of(form_text, st.sampled_from(["", "@daily", "0 2 * * *", "* * * * * *"]))))
def test_schedule_form_answers_303_or_400_and_every_page_still_renders(console, schedule):
    from app.config import cron_problem
    from app.store.schedule import stored_schedule

    response = post_form(console.client, "/settings", {"schedule": schedule, "csrf_token": console.csrf}, {303, 400})
    event(f"status {response.status_code}")
    if response.status_code == 303:
        with console.app.app_context():
            saved = stored_schedule().value
        assert saved == " ".join(schedule.split()) and (not saved or cron_problem(saved) is None)
    else:
        assert "schedule" in response.get_data(as_text=True).lower()
    for page in ("/settings", "/"):
        assert_page(console.client.get(page), {200})


audit_value = st.one_of(st.text(max_size=40), repeated(low=100, high=3000), with_control(st.text(max_size=10)))
audit_date = st.one_of(
    audit_value,
    st.dates(min_value=date(1, 1, 2), max_value=date(9999, 12, 30)).map(
        date.isoformat
    ),  # 1-1-1, 9999-12-31: tested below
    st.sampled_from(["2025-02-30", "2025-13-01", "20250101", "2025-1-1", "\u0662\u0660\u0662\u0665-01-01"]),
)
audit_page = st.one_of(
    audit_value, st.integers(-(10**12), 10**16).map(str), st.sampled_from(["", "0", "-1", "1e3", " 2 ", "9" * 5000])
)


@fuzz(100)
@given(
    user=audit_value,
    action=audit_value,
    outcome=st.one_of(st.sampled_from(["", "ok", "failed", "refused", "rate-limited"]), audit_value),
    since=audit_date,
    until=audit_date,
    page=audit_page,
)
def test_audit_filters_answer_200_or_400(console, user, action, outcome, since, until, page):
    query = urlencode(
        {"user": user, "action": action, "outcome": outcome, "since": since, "until": until, "page": page}
    )
    assert_page(console.client.get("/audit?" + query), {200, 400})
    export = console.client.get("/audit.csv?" + query)
    assert export.status_code in (200, 400), (export.status_code, export.get_data()[:300])


@fuzz(60)
@given(
    name=st.one_of(st.text(max_size=100), st.just("ci")),
    role=st.one_of(st.sampled_from(ROLES), st.text(max_size=12)),
    expires=st.one_of(
        st.integers(-(10**30), 10**30).map(str), st.text(max_size=12), st.sampled_from(["", "0", "1", "3650", "3651"])
    ),
)
def test_token_form_answers_200_or_400(console, name, role, expires):
    data = {"token-name": name, "token-role": role, "token-expires_days": expires, "token-submit": "Create token"}
    response = post_form(console.client, "/account", {**data, "csrf_token": console.csrf}, {200, 400})
    assert_page(response, {200, 400})


@fuzz(60)
@given(passkey=passkeys, confirm=form_text)
def test_restore_page_form_on_a_listed_backup_enqueues_nothing(console, stored, target_db, passkey, confirm):
    console.reset_limits()
    for typed in (confirm, target_db):
        data = {"passkey": passkey, "confirm": typed, "csrf_token": console.csrf}
        post_form(console.client, f"/backups/{stored['old']}/restore", data, {400, 403, 409, 429})
    assert console.queued() == 0


@fuzz(40)
@given(note=form_text)
def test_pin_note_answers_303_or_400(console, stored, note):
    post_form(console.client, f"/backups/{stored['old']}/pin", {"note": note, "csrf_token": console.csrf}, {303, 400})
    assert_page(console.client.get("/"), {200})


# --------------------------------------------------------------------------- API methods and headers

API_ROUTES = {
    "/api/setting/backup": {"POST"},
    "/api/setting/backups": {"GET", "HEAD", "OPTIONS"},
    "/api/setting/restore": {"POST"},
    "/api/jobs/0123456789abcdef": {"GET", "HEAD", "OPTIONS"},
}


@pytest.mark.parametrize("path", sorted(API_ROUTES))
def test_api_routes_answer_wrong_methods_with_405(console, path):
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "PROPFIND", "TRACE", "X-WHATEVER"):
        if method in API_ROUTES[path]:
            continue
        for headers in (console.headers, {}):
            response = console.api.open(path, method=method, headers=headers, json={"filename": "x"})
            assert_api_error(response, {405})
    assert console.queued() == 0


@fuzz(100)
@given(
    header=st.one_of(
        st.sampled_from(["Bearer", "Bearer ", "Bearer  ", "bearer", "Basic xxx", "Basic YWRhOnB3", "Token abc", ""]),
        st.builds(lambda t: "Bearer " + t, st.text(max_size=80)),
        st.builds(lambda t: "Bearer " + t, repeated(st.sampled_from("aZ9_-"), low=10_000, high=10_240)),
        st.text(max_size=80),
    ),
    as_server_sends_it=st.booleans(),
)
@example(header="Bearer \u2603\u00e9", as_server_sends_it=True)
def test_malformed_authorization_headers_are_401(console, header, as_server_sends_it):
    header = header.replace("\r", "").replace("\n", "")
    if as_server_sends_it:  # a real server hands the app the header's UTF-8 bytes decoded as Latin-1
        header = header.encode("utf-8", "replace").decode("latin-1")
    for path in ("/api/setting/backups", "/api/jobs/0123456789abcdef"):
        assert_api_error(console.api.get(path, headers={"Authorization": header}), {401})
    for path in ("/api/setting/restore", "/api/setting/backup"):
        body = {"filename": "x.dump", "passkey": PASSKEY}
        response = console.api.post(path, headers={"Authorization": header}, json=body)
        assert_api_error(response, {401})
    assert console.queued() == 0


# --------------------------------------------------------------------------- app bugs this file found


def test_bug_a_lone_surrogate_filename_is_a_4xx(console, stored):
    response = console.api.post(
        "/api/setting/restore",
        headers={**console.headers, "Content-Type": "application/json"},
        data=b'{"filename": "\\ud800.dump", "passkey": "x"}',
    )
    assert_api_error(response)


def test_bug_a_lone_surrogate_passkey_is_a_4xx(console, stored):
    body = json.dumps({"filename": stored["old"], "passkey": "\ud800"})  # ensure_ascii: sent as \ud800
    response = console.api.post(
        "/api/setting/restore", headers={**console.headers, "Content-Type": "application/json"}, data=body
    )
    assert_api_error(response, {400, 403, 429})


@pytest.mark.parametrize("path", ["/api/setting/restore", "/api/setting/backup"])
def test_bug_a_post_with_a_bad_token_is_401(console, path):
    for header in ("Bearer pgc_wrong", "Bearer", "Basic YWRhOnB3"):
        response = console.api.post(path, headers={"Authorization": header}, json={"filename": "x", "passkey": "y"})
        assert_api_error(response, {401})  # was 400 "The CSRF token is missing."


@pytest.mark.parametrize("password", [" ", "\r" * 300])
def test_bug_a_blank_password_is_a_400(console, password):
    data = {"username": "bob", "role": "viewer", "password": password, "csrf_token": console.csrf}
    assert console.client.post("/users", data=data).status_code == 400  # was 500 (PeopleError)


def test_bug_deeply_nested_json_is_a_400(console):
    response = console.api.post(
        "/api/setting/restore",
        headers={**console.headers, "Content-Type": "application/json"},
        data="[" * 2000 + "]" * 2000,  # 4 kB, far below MAX_CONTENT_LENGTH
    )
    assert_api_error(response, {400})


def test_bug_a_huge_audit_page_number_is_not_a_500(console):
    assert_page(console.client.get("/audit?page=" + "9" * 20), {200, 400})


@pytest.mark.parametrize("query", ["since=0001-01-01", "until=9999-12-31"])
def test_bug_audit_dates_at_the_calendar_limits_are_not_a_500(console, query):
    for path in ("/audit", "/audit.csv"):
        response = console.client.get(f"{path}?{query}")
        assert response.status_code in (200, 400), (path, response.status_code)


def test_bug_a_schedule_that_never_fires_is_refused_not_saved(console):
    response = console.client.post("/settings", data={"schedule": "0 0 30 2 *", "csrf_token": console.csrf})
    # Once it was saved, and every page that shows the next run (/settings, /) answered 500.
    assert response.status_code == 400
    assert "never fires" in response.get_data(as_text=True)
    with console.app.app_context():
        from app.store.schedule import stored_schedule

        assert stored_schedule() is None  # nothing was saved
    assert console.client.get("/settings").status_code == 200
    assert console.client.get("/").status_code == 200


def test_bug_one_odd_name_in_the_bucket_does_not_break_the_listing(console):
    odd = "x-staging-on-0001-01-01-at-12-00-00-AM-LMT.dump"  # any writer to the shared bucket may leave one
    assert check_name(odd) == odd
    console.storage().put_bytes(odd, b"x")
    assert console.api.get("/api/setting/backups", headers=console.headers).status_code == 200
    assert console.client.get("/").status_code == 200


def test_bug_downloading_a_non_latin1_name_sends_a_valid_header(console):
    name = "caf\u00e9-\u2603.dump"  # check_name accepts it; the bucket is shared with other writers
    console.storage().put_bytes(name, b"x")
    response = console.client.get(f"/backups/{quote(name, safe='')}/download")
    response.get_data()
    response.close()
    assert response.status_code == 200
    assert HEADER_VALUE.fullmatch(response.headers["Content-Disposition"])


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
