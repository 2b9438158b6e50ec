"""A real OpenID Connect provider (oidc-provider-mock) on 127.0.0.1, in the test's process."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class Provider:
    """A real OpenID Connect provider (oidc-provider-mock) on 127.0.0.1, in this test's process."""

    def __init__(self, url: str):
        self.url = url

    def set_user(self, sub: str, **claims) -> None:
        """The claims the provider puts in `sub`'s ID token (groups included)."""
        from urllib.parse import quote

        import requests

        answer = requests.put(f"{self.url}/users/{quote(sub, safe='')}", json=claims, timeout=10)
        assert answer.status_code == 204, answer.text

    def authorize(self, authorization_url: str, sub: str) -> str:
        """What a person does on the provider's page: sign in as `sub`; returns where it sends the browser."""
        import requests

        answer = requests.post(authorization_url, data={"sub": sub}, allow_redirects=False, timeout=10)
        assert answer.status_code == 302, answer.text
        return answer.headers["Location"]


@contextlib.contextmanager
def run_provider(**options) -> Iterator[Provider]:
    """A provider of its own (its own keys, users and issuer); options as run_server_in_thread takes them."""
    import oidc_provider_mock

    with oidc_provider_mock.run_server_in_thread(**options) as server:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1", host
        yield Provider(f"http://127.0.0.1:{port}")
