"""Servers that receive notifications, started by a test: an HTTP receiver (json://, the old
Slack-compatible webhook) and aiosmtpd (mailto://, the old SMTP settings). The fixtures `receiver`
and `mailbox` (tests/server_fixtures.py) run them."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests.support.processes import free_port

SECRET_PATH = "/services/T0000/B0000/s3cr3tW3bh00kT0ken"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Receiver:
    port: int = 0
    plan: list[int] = field(default_factory=list)  # statuses to answer first, in order
    default: int = 200  # then this one
    requests: list[tuple[str, dict]] = field(default_factory=list)  # (path, JSON body)

    def url(self, scheme: str = "json") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{SECRET_PATH}"


class Bodies(Sequence):
    """The JSON bodies a receiver has been sent so far, in order."""

    def __init__(self, receiver: Receiver):
        self.receiver = receiver

    def __getitem__(self, index):
        return [body for _, body in self.receiver.requests][index]

    def __len__(self) -> int:
        return len(self.receiver.requests)


@contextlib.contextmanager
def running_receiver() -> Iterator[Receiver]:
    """An HTTP server on a free port that records each POST and answers with the planned statuses."""
    state = Receiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                state.requests.append((self.path, json.loads(body)))
                status = state.plan.pop(0) if state.plan else state.default
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    state.port = server.server_address[1]
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --------------------------------------------------------------------------- an SMTP server (aiosmtpd)


@dataclass
class Mailbox:
    port: int = 0
    refuse_logins: bool = False
    logins: list[tuple[str, str]] = field(default_factory=list)
    messages: list[tuple[str, list[str], str]] = field(default_factory=list)  # (from, rcpts, data)

    def url(self) -> str:
        return f"mailto://127.0.0.1:{self.port}?to=ops@example.com&from=pgconsole@example.com"


@contextlib.contextmanager
def running_mailbox() -> Iterator[Mailbox]:
    """An SMTP server (aiosmtpd) on a free port that records logins and messages."""
    box = Mailbox()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            box.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content.decode()))
            return "250 OK"

    def authenticate(server, session, envelope, mechanism, auth_data):
        box.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=not box.refuse_logins, handled=False)  # handled=False: aiosmtpd answers 535

    box.port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=box.port, authenticator=authenticate,
                            auth_require_tls=False)  # fmt: skip
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


def mail_text(data: str) -> str:
    """The text/plain part of a message, decoded (Apprise sends quoted-printable)."""
    import email
    from email import policy

    parsed = email.message_from_string(data, policy=policy.default)
    return parsed.get_body(("plain",)).get_content()
