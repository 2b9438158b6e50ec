"""What runs around every request: the target a URL names, the values every template gets, and
security headers.

Pages and API routes about one target have two addresses: the short ones (`/`, `/backups/…`,
`/api/setting/…`), which act on the default target, and `/targets/<name>/…`. The `target` in
the URL is taken off before the view runs and becomes the target the request acts on
(`services.acting_on`); links built on such a page stay on that target.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, g, request

from app import services
from app.web import access

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


def take_target(endpoint: str | None, values: dict | None) -> None:
    """Act on the URL's target, or on the default one for the short addresses of a target's page."""
    name = (values or {}).pop("target", None)
    g.target_in_url, g.requested_target = name is not None, name
    about_a_target = endpoint is not None and current_app.url_map.is_endpoint_expecting(endpoint, "target")
    if name is None:
        name = services.console_settings().default_target if about_a_target else None
    known = name is not None and any(t.name == name for t in services.console_settings().targets)
    services.set_target(name if known else None)  # an unknown name is a 404 once the user is known


def keep_target(endpoint: str, values: dict) -> None:
    """Links built on a page reached by `/targets/<name>/…` stay on that target."""
    if "target" in values or not g.get("target_in_url"):
        return
    if current_app.url_map.is_endpoint_expecting(endpoint, "target"):
        values["target"] = services.scoped_target()


def forget_target(_exc: BaseException | None) -> None:
    services.set_target(None)


def inject_environment() -> dict:
    settings = services.settings()
    return {"app_env": settings.app_env, "target_db": settings.target.dbname, "target_name": settings.target_name,
            "several_targets": settings.several_targets, "on_target": services.scoped_target() is not None,
            "may": access.has_role, "env_css": settings.color_of}  # fmt: skip


def security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if services.settings().session_cookie_secure:  # served over HTTPS: browsers should never try plain HTTP
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    if request.path != "/healthz" and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    return response


def register_hooks(app: Flask) -> None:
    app.url_value_preprocessor(take_target)
    app.url_defaults(keep_target)
    app.teardown_request(forget_target)
    app.context_processor(inject_environment)
    app.after_request(security_headers)
