"""Hostile inputs for the bad-input tests: hypothesis strategies, the console under test, the answers expected."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import redis as redis_lib
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from app.domain.naming import backup_filename

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


# Names close to the console's own format, with every part sometimes out of range or malformed.
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


def now_name(env: str, minutes_ago: float = 0, app_name: str = "pharmatracker") -> str:
    return backup_filename(app_name, env, datetime.now(UTC) - timedelta(minutes=minutes_ago), ZONE)


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


form_text = st.one_of(st.text(max_size=100), with_control(st.text(max_size=20)), repeated(low=5000, high=5200))
