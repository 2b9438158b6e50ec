"""Fixtures on the real servers of tests/support: three S3 servers, PostgreSQL 15, 17 and 18, and the
notification receivers. A pytest plugin (tests/conftest.py lists it), so every folder sees them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from tests.support.databases import create_database, database_names, drop_database, new_name
from tests.support.notify import Bodies, Mailbox, Receiver, running_mailbox, running_receiver
from tests.support.pg_servers import VERSIONS, PgServer, PgServers
from tests.support.s3_servers import SERVERS, S3Bucket, S3Endpoint, create_bucket, remove_bucket

# --------------------------------------------------------------------------- S3


@pytest.fixture
def slow_s3(s3_server) -> Iterator[tuple]:
    """(proxy, env): a proxy in front of the S3 server that holds or fails what a test tells it to
    (tests/jobs/test_faults.py FlakyS3), and the env that points the console at it."""
    from tests.jobs.test_faults import FlakyS3

    proxy = FlakyS3(s3_server["S3_ENDPOINT_URL"])
    yield proxy, {**s3_server, "S3_ENDPOINT_URL": proxy.url}
    proxy.close()


@pytest.fixture(scope="session")
def s3_endpoints() -> Iterator[dict[str, S3Endpoint]]:
    """Each server is started the first time a test asks for it, and stopped at the session's end."""
    with contextlib.ExitStack() as stack:

        class Lazy(dict):
            def __missing__(self, name: str) -> S3Endpoint:
                self[name] = stack.enter_context(SERVERS[name]())
                return self[name]

        yield Lazy()



@pytest.fixture(params=sorted(SERVERS))
def s3_store(request, s3_endpoints) -> Iterator[S3Bucket]:
    """A fresh bucket on each of the three servers in turn (the test runs once per server)."""
    endpoint = s3_endpoints[request.param]
    bucket = create_bucket(endpoint)
    yield S3Bucket(endpoint, bucket)
    remove_bucket(endpoint, bucket)


@pytest.fixture
def seaweedfs_bucket(s3_endpoints) -> Iterator[S3Bucket]:
    """A fresh bucket on SeaweedFS, which reports each part's size (`HEAD ?partNumber=N`)."""
    endpoint = s3_endpoints["seaweedfs"]
    bucket = create_bucket(endpoint)
    yield S3Bucket(endpoint, bucket)
    remove_bucket(endpoint, bucket)


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def pg_servers() -> Iterator[PgServers]:
    servers = PgServers()
    yield servers
    servers.close()


@pytest.fixture(params=VERSIONS, ids=[f"pg{major}" for major in VERSIONS])
def pg_server(request, pg_servers) -> PgServer:
    """One running server per parameter: 15 (system), 17 and 18 (wheels).

    To run on a subset: @pytest.mark.parametrize("pg_server", [17, 18], indirect=True).
    """
    return pg_servers.get(request.param)


@pytest.fixture
def server_db(pg_server) -> Iterator[str]:
    """A throw-away database with sample rows on `pg_server`; it and its scratch copies are dropped after."""
    name = new_name()
    with pg_server.admin() as admin:
        create_database(admin, name, server=pg_server.params())
    yield name
    with pg_server.admin() as admin:
        for leftover in database_names(admin, f"{name}%"):  # itself, scratch or set-aside copies
            drop_database(admin, leftover)


# --------------------------------------------------------------------------- notifications


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver (json://) on 127.0.0.1 for this test."""
    with running_receiver() as state:
        yield state


@pytest.fixture
def webhook(receiver) -> tuple[str, Bodies]:
    """ALERT_WEBHOOK_URL's receiver (a Slack-style http:// webhook): its URL, and what it has been sent."""
    return receiver.url("http"), Bodies(receiver)


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """An SMTP server (mailto://) on 127.0.0.1 for this test."""
    with running_mailbox() as box:
        yield box
