"""Where alerts go: every channel as an Apprise URL.

`NOTIFY_URLS` holds Apprise URLs already; the older `ALERT_WEBHOOK_URL` and
`SMTP_*`/`ALERT_EMAIL_TO` settings are translated into Apprise URLs here, so the rest of the
console knows one kind of channel.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode, urlsplit

from app.config.settings import Settings


def apprise_urls(settings: Settings) -> list[str]:
    """Every channel as an Apprise URL: NOTIFY_URLS, then the older webhook and SMTP settings translated."""
    urls = list(settings.notify_urls)
    if settings.alert_webhook_url:
        urls.append(_webhook_as_apprise(settings.alert_webhook_url))
    if settings.alert_email_to and settings.smtp_host:
        urls.append(_smtp_as_apprise(settings))
    return urls


def _webhook_as_apprise(url: str) -> str:
    """A Slack-compatible webhook (Slack, Mattermost, Teams' Slack-style hooks): Apprise's JSON
    sender, with its "message" field renamed to the "text" those hooks read."""
    parts = urlsplit(url)
    scheme = "jsons" if parts.scheme == "https" else "json"
    query = f"{parts.query}&" if parts.query else ""
    return f"{scheme}://{parts.netloc}{parts.path or '/'}?{query}{quote(':message')}=text"


def _smtp_as_apprise(settings: Settings) -> str:
    login = ""
    if settings.smtp_username:
        login = quote(settings.smtp_username, safe="")
        if settings.smtp_password:
            login += ":" + quote(settings.smtp_password, safe="")
        login += "@"
    query = {"to": ",".join(settings.alert_email_to), "from": settings.smtp_from,
             "mode": "starttls" if settings.smtp_starttls else "insecure"}  # fmt: skip
    scheme = "mailtos" if settings.smtp_starttls else "mailto"
    return f"{scheme}://{login}{settings.smtp_host}:{settings.smtp_port}?{urlencode(query)}"
