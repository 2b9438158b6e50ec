"""Delivering a message to Apprise URLs: one URL scheme for Slack, Teams, Discord, Telegram, e-mail, ntfy, …

A message is a side effect of a job that has already succeeded or failed on its own terms; a
broken channel must not turn a good backup into a failed job, nor hide the original error. So
`deliver` retries each URL a few times with backoff, logs what went wrong and returns one
outcome per URL instead of raising.

URLs hold secrets (a webhook's token, a mail password, a bot token). They are never logged or
returned: a URL is named by `where` (scheme and host only), and any text that came from Apprise
is redacted before it is logged or returned. Apprise's own log (its debug lines quote whole
URLs) is kept out of the application's log.
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- Apprise's log
# Apprise logs whole URLs ("Unparseable URL …", its debug lines), and urllib3's debug lines
# quote a webhook's path: none of their records reach any handler. Apprise's warnings are kept
# for the delivery running in this context and shown only after redaction (`_deliver_to`).
_collected: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("apprise_messages", default=None)


class _KeptFromTheLog(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        messages = _collected.get()
        if messages is not None and record.levelno >= logging.WARNING:
            messages.append(record.getMessage())
        return False


class _QuietWhileDelivering(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return _collected.get() is None


def _guard(name: str, kind: type[logging.Filter]) -> None:
    logger = logging.getLogger(name)
    if not any(isinstance(f, kind) for f in logger.filters):
        logger.addFilter(kind())


APPRISE_LOGGER = "apprise"  # apprise.LOGGER_NAME; Apprise itself is imported only to deliver (it and
# requests weigh 8 MB, in every process that imports this module)
_guard(APPRISE_LOGGER, _KeptFromTheLog)
logging.getLogger(APPRISE_LOGGER).setLevel(logging.WARNING)  # its debug lines are not even made
for _name in ("urllib3.connectionpool", "urllib3.util.retry"):
    _guard(_name, _QuietWhileDelivering)


@dataclass(frozen=True)
class Delivery:
    """What happened to one URL: `where` is its scheme and host, `outcome` "ok" or "failed: why"."""

    where: str
    outcome: str

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def line(self) -> str:
        return f"{self.where}: {self.outcome}"


def deliver(
    urls: list[str],
    title: str,
    body: str,
    *,
    attempts: int = 3,
    backoff_seconds: float = 1.0,
    sleep: Callable[[float], object] = time.sleep,
) -> list[Delivery]:
    """Send `title` and `body` to every URL, each retried with exponential backoff; never raises."""
    return [_deliver_to(url, title, body, attempts, backoff_seconds, sleep) for url in urls]


def _deliver_to(url: str, title: str, body: str, attempts: int, backoff: float, sleep: Callable) -> Delivery:
    import apprise

    shown, secrets = where(url), _secret_parts(url)
    attempts, reason = max(1, attempts), ""
    for n in range(attempts):
        messages: list[str] = []
        token = _collected.set(messages)
        try:
            service = apprise.Apprise.instantiate(url)
            if service is None:
                return _failed(shown, "not a valid Apprise URL (or its service is unavailable here)", 1)
            if service.notify(body=body, title=title, body_format=apprise.NotifyFormat.TEXT):
                return Delivery(shown, "ok")
            reason = _redact("; ".join(messages) or "the service refused the message", secrets)
        except Exception as exc:  # noqa: BLE001 - a channel's failure is reported, never raised
            reason = _redact(f"{type(exc).__name__}: {exc}", secrets)
        finally:
            _collected.reset(token)
        if n + 1 < attempts:
            sleep(backoff * 2**n)
    return _failed(shown, reason, attempts)


def _failed(shown: str, reason: str, attempts: int) -> Delivery:
    log.warning("alert to %s failed after %d attempt(s): %s", shown, attempts, reason)
    return Delivery(shown, f"failed: {reason}")


def where(url: str) -> str:
    """A URL named without its secrets: scheme://host[:port].

    Only a real host name (with a dot, an IP address or localhost) is shown: many services put
    a token where the host would be (slack://TokenA/…, tgram://bot-token/…), so for those only
    the scheme is named.
    """
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return f"{url.partition('://')[0][:20]}://…" if "://" in url else "<unreadable URL>"
    if not _is_host_name(host):
        return f"{parts.scheme}://…"
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}"


def _is_host_name(host: str) -> bool:
    if host == "localhost" or "." in host:
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _secret_parts(url: str) -> dict[str, str]:
    """Every part of a URL that may be secret, longest first, mapped to what is shown instead."""
    secrets = {url: where(url)}
    try:
        parts = urlsplit(url)
        candidates = [parts.password, parts.username, parts.path, parts.query]
        if not _is_host_name(parts.hostname or ""):
            candidates.append(parts.netloc)
    except ValueError:
        candidates = []
    for part in candidates:
        if not part or len(part) < 2:  # never redact a bare "/": it would garble every message
            continue
        for form in {part, unquote(part)}:  # a message may quote it as written or decoded
            secrets[form] = "…"
            for piece in form.strip("/").split("/"):  # … or quote one segment (a token)
                if len(piece) >= 6:
                    secrets[piece] = "…"
    return dict(sorted(secrets.items(), key=lambda item: -len(item[0])))


def _redact(text: str, secrets: dict[str, str]) -> str:
    for secret, shown in secrets.items():
        text = text.replace(secret, shown)
    return text
