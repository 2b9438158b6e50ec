"""REDIS_URL with a password and TLS: the console works through it end to end, and its password
never shows.

Whoever can write to Redis can disturb jobs, so Redis should let only the console in: a password
(requirepass, or an ACL user limited to the console's keys) and TLS off the host. A redis-server of
this session's own serves TLS only, with a server certificate from a private CA made here, a
`requirepass` and an ACL user; a missing redis-server fails these tests (never skips them).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import redis as redis_lib

from tests.helpers import wait_for, wait_for_job
from tests.support import ROOT
from tests.support.processes import child_env, free_port

PASSWORD = "redis-pass/that-must-never-leak-6183"  # the "/" must be quoted in a URL
USER, USER_PASSWORD = "pgconsole", "acl-user-secret-that-must-never-leak-2290"
WRONG = "wrong-redis-password-that-must-never-leak-3371"
SECRETS = (PASSWORD, quote(PASSWORD, safe=""), USER_PASSWORD, WRONG)


@dataclass
class TlsRedis:
    port: int
    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    def url(self, user: str = "", password: str = PASSWORD, scheme: str = "rediss", client_cert: bool = False,
            ca: Path | None = None) -> str:  # fmt: skip
        """A REDIS_URL for this server: the password quoted, and for rediss:// the private CA to trust."""
        url = f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.port}/0"
        if scheme != "rediss":
            return url
        query = f"?ssl_cert_reqs=required&ssl_ca_certs={ca or self.ca}"
        if client_cert:
            query += f"&ssl_certfile={self.folder / 'client.pem'}&ssl_keyfile={self.folder / 'client.key'}"
        return url + query

    def admin(self) -> redis_lib.Redis:
        return redis_lib.Redis.from_url(self.url())


def _certificates(folder: Path) -> None:
    """A private CA, a server certificate for 127.0.0.1 and localhost, and a client certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def write(stem: str, key, cert: x509.Certificate) -> None:
        (folder / f"{stem}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))  # fmt: skip
        (folder / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (folder / f"{stem}.key").chmod(0o600)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(name("pgconsole test CA")).issuer_name(name("pgconsole test CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    write("ca", ca_key, ca)
    for stem, usage, names in (
        ("server", ExtendedKeyUsageOID.SERVER_AUTH,
         [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH, [x509.DNSName("pgconsole-worker")]),
    ):  # fmt: skip
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder().subject_name(name(stem)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )  # fmt: skip
        write(stem, key, cert)


@pytest.fixture(scope="session")
def tls_redis(tmp_path_factory) -> Iterator[TlsRedis]:
    """redis-server on a TLS port only (no plain port), with requirepass and the console's ACL user."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (apt-get install -y redis-server)")
    folder = tmp_path_factory.mktemp("tls-redis")
    _certificates(folder)
    server = TlsRedis(free_port(), folder)
    argv = [binary, "--port", "0", "--bind", "127.0.0.1", "--tls-port", str(server.port),
            "--tls-cert-file", str(folder / "server.pem"), "--tls-key-file", str(folder / "server.key"),
            "--tls-ca-cert-file", str(server.ca), "--tls-auth-clients", "optional",
            "--requirepass", PASSWORD, "--save", "", "--appendonly", "no", "--dir", str(folder)]  # fmt: skip
    log = open(folder / "redis.log", "wb")  # noqa: SIM115 - closed below, after the server
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            wait_for(lambda: _answers(server.admin()), timeout=15, message="the TLS redis-server to start")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{(folder / 'redis.log').read_text(errors='replace')}") from None
        # The console's own user: its keys (REDIS_NAMESPACE:* and RQ's rq:*), RQ's channels, and no
        # administrative commands. The README's recommendation, tried here.
        server.admin().execute_command(
            "ACL", "SETUSER", USER, "reset", "on", f">{USER_PASSWORD}", "~pgct-*", "~rq:*", "&rq:*",
            "+@all", "-@admin", "-@dangerous", "+info",
        )  # fmt: skip
        yield server
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def _answers(client: redis_lib.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis_lib.RedisError:
        return False


def assert_unquoted(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"a Redis password is in {where}"


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # a local test server
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def flask_command(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *argv], cwd=ROOT, env=child_env(env),
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_the_console_runs_end_to_end_over_tls_as_its_own_acl_user(app_env, tls_redis, processes, console_of,
                                                                  make_user):  # fmt: skip
    """Web, worker and scheduler as real processes, as the README's ACL user with a client certificate:
    a backup runs, /healthz and /metrics say Redis is up, sign-in and the pages work, Redis denied
    nothing, and no log holds the password."""
    from flask import current_app

    from app.jobs.queue import start_job
    from app.scheduler import heartbeat_key
    from tests.helpers import AuthActions

    env = {**app_env, "REDIS_URL": tls_redis.url(USER, USER_PASSWORD, client_cert=True),
           "METRICS_TOKEN": "metrics-token-5150", "BACKUP_SCHEDULE": "0 3 * * *"}  # fmt: skip
    admin = tls_redis.admin()
    admin.execute_command("ACL", "LOG", "RESET")
    settings, redis, storage = console_of(env)
    base = processes.web(env)
    processes.worker(env)
    processes.start("scheduler", [sys.executable, "-m", "flask", "--app", "wsgi", "scheduler"], env)

    job_id = start_job(settings, redis, "backup", "olga")
    try:
        final = wait_for_job(redis, job_id, timeout=120)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nworker log:\n{processes.log('worker')}") from exc
    filename = final["result"]["filename"]
    assert filename in [o.name for o in storage.list_objects()]
    wait_for(lambda: admin.exists(heartbeat_key(settings.redis_namespace)), timeout=30,
             message="the scheduler's heartbeat")  # fmt: skip

    status, body = get(f"{base}/healthz")
    assert status == 200 and '"redis":"ok"' in body.replace(" ", ""), body
    status, body = get(f"{base}/metrics", {"Authorization": "Bearer metrics-token-5150"})
    assert status == 200 and 'pgconsole_up{component="redis",environment="staging",target="staging"} 1.0' in body, body
    # Sign-in (its failure limit is in Redis) and the list (its shared listing is in Redis).
    make_user("olga", "operator")
    client = current_app.test_client()
    assert AuthActions(client).login("olga").status_code == 302
    assert filename in client.get("/").get_data(as_text=True)

    assert admin.execute_command("ACL", "LOG") == [], "Redis denied the console's user a command or key"
    for name in ("web", "worker", "scheduler"):
        assert_unquoted(processes.log(name), f"the {name}'s log")


def test_the_default_users_password_works_over_tls(make_app, tls_redis):
    """`rediss://:PASSWORD@…` (requirepass), the password holding a percent-encoded "/"."""
    client = make_app(REDIS_URL=tls_redis.url()).test_client()
    response = client.get("/healthz")
    assert response.get_json()["checks"]["redis"] == "ok"


def test_a_wrong_password_is_named_by_host_and_port_and_never_shown(app_env, tls_redis, processes):
    env = {**app_env, "REDIS_URL": tls_redis.url(password=WRONG), "METRICS_TOKEN": "metrics-token-5150"}
    base = processes.web(env)
    status, body = get(f"{base}/healthz")
    assert status == 503 and '"redis":"down' in body.replace(" ", ""), body
    assert_unquoted(body, "/healthz")
    status, body = get(f"{base}/metrics", {"Authorization": "Bearer metrics-token-5150"})
    assert 'pgconsole_up{component="redis",environment="staging",target="staging"} 0.0' in body, body
    assert_unquoted(body, "/metrics")
    status, body = get(f"{base}/login")  # a page that needs no Redis still answers
    assert status == 200

    # The worker and the scheduler stop at once with one line that says where, and not the password.
    for command in ("worker", "scheduler"):
        done = flask_command(env, command)
        out = done.stdout + done.stderr
        assert done.returncode == 2, out
        assert f"Redis at rediss://***@127.0.0.1:{tls_redis.port}/0 refused the user name or password" in out, out
        assert "Traceback" not in out
        assert_unquoted(out, f"the {command}'s output")
    assert_unquoted(processes.log("web"), "the web's log")


def test_plain_redis_to_the_tls_port_is_down_within_the_connect_timeout(make_app, tls_redis):
    from app.services.clients import redis_for, redis_problem

    app = make_app(REDIS_URL=tls_redis.url(scheme="redis"))
    started = time.monotonic()
    body = app.test_client().get("/healthz").get_json()
    assert body["checks"]["redis"].startswith("down"), body
    assert time.monotonic() - started < 10  # the TLS server drops the plain-text client: no hang
    settings = app.config["SETTINGS"]
    problem = redis_problem(settings, redis_for(settings))
    assert problem and problem.startswith(f"Redis at redis://***@127.0.0.1:{tls_redis.port}/0 does not answer")
    assert_unquoted(problem, "the worker's message")


def test_a_server_certificate_that_the_url_does_not_trust_is_refused(make_app, tls_redis):
    """Without `ssl_ca_certs` the system's CAs decide, and they do not know the private CA: refused."""
    url = tls_redis.url().partition("?")[0]
    body = make_app(REDIS_URL=url).test_client().get("/healthz").get_json()
    assert body["checks"]["redis"].startswith("down"), body


def test_redis_url_mistakes_are_refused_at_start_without_quoting_the_url(tls_redis):
    from app.config import ConfigError, Settings
    from app.services.clients import redacted_url, redis_for

    def problem(url: str) -> str:
        with pytest.raises(ConfigError) as refused:
            redis_for(Settings.from_env({"DATABASE_URL": "postgresql://u@h/db", "REDIS_URL": url}))
        assert refused.value.variable == "REDIS_URL"
        return str(refused.value)

    # An unencoded "/" or "#" in the password: redis-py would read a piece of it as the port or path.
    for url in ("redis://:pa55/word-6183@10.0.0.5:6379/0", "rediss://u:pa55#word-6183@10.0.0.5:6380/0"):
        message = problem(url)
        assert "percent-encode" in message and "pa55" not in message and "word-6183" not in message
        assert "pa55" not in redacted_url(url) and "word-6183" not in redacted_url(url)
    assert "needs rediss://" in problem(f"redis://:x@127.0.0.1:6379/0?ssl_ca_certs={tls_redis.ca}")
    assert "nothing readable at /nowhere/ca.pem" in problem("rediss://:x@127.0.0.1:6380/0?ssl_ca_certs=/nowhere/ca.pem")
    assert redacted_url("rediss://u:p%2Fw@10.0.0.5:6380/2?ssl_password=k") == "rediss://u:***@10.0.0.5:6380/2"
