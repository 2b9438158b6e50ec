"""The web layer: blueprints by feature, the sign-in rules they share, and security headers.

Pages and API routes about one target have two addresses: the seed's (`/`, `/backups/…`,
`/api/setting/…`), which act on the default target, and `/targets/<name>/…`. The `target` in
the URL is taken off before the view runs and becomes the target the request acts on
(`services.acting_on`); links built on such a page stay on that target.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from flask import Flask, g, jsonify, render_template, request, url_for
from markupsafe import Markup, escape
from werkzeug.exceptions import HTTPException, default_exceptions

from app import services
from app.domain.alerts import duration
from app.operations import Refused

JOB_MENTION = re.compile(r"\bjob ([0-9a-f]{32})\b")  # job ids are uuid4 hex (jobs.queue.start_job)
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


def register_blueprints(app: Flask) -> None:
    from app.web import auth
    from app.web.activity.views import bp as activity_bp
    from app.web.api.views import bp as api_bp
    from app.web.audit.views import bp as audit_bp
    from app.web.auth import sso
    from app.web.auth.views import bp as auth_bp
    from app.web.backups.views import bp as backups_bp
    from app.web.health.views import bp as health_bp
    from app.web.jobs.views import bp as jobs_bp
    from app.web.maintenance.views import bp as maintenance_bp
    from app.web.metrics.views import bp as metrics_bp
    from app.web.people.views import bp as people_bp
    from app.web.restore.views import bp as restore_bp

    auth.init_app(app)
    sso.init_app(app, app.config["SETTINGS"].oidc)
    pages = (auth_bp, sso.bp, backups_bp, restore_bp, jobs_bp, people_bp, audit_bp, maintenance_bp)
    for blueprint in (*pages, api_bp, health_bp, metrics_bp, activity_bp):
        app.register_blueprint(blueprint)

    @app.url_value_preprocessor
    def take_target(endpoint: str | None, values: dict | None) -> None:
        """Act on the URL's target, or on the default one for the seed's addresses of a target's page."""
        name = (values or {}).pop("target", None)
        g.target_in_url, g.requested_target = name is not None, name
        about_a_target = endpoint is not None and app.url_map.is_endpoint_expecting(endpoint, "target")
        if name is None:
            name = services.console_settings().default_target if about_a_target else None
        known = name is not None and any(t.name == name for t in services.console_settings().targets)
        services.set_target(name if known else None)  # an unknown name is a 404 once the user is known

    @app.url_defaults
    def keep_target(endpoint: str, values: dict) -> None:
        if "target" not in values and g.get("target_in_url") and app.url_map.is_endpoint_expecting(endpoint, "target"):
            values["target"] = services.scoped_target()

    @app.teardown_request
    def forget_target(_exc: BaseException | None) -> None:
        services.set_target(None)

    @app.context_processor
    def inject_environment() -> dict:
        settings = services.settings()
        return {"app_env": settings.app_env, "target_db": settings.target.dbname, "target_name": settings.target_name,
                "several_targets": settings.several_targets, "on_target": services.scoped_target() is not None,
                "may": auth.has_role, "env_css": settings.color_of}  # fmt: skip

    @app.template_filter("filesize")
    def filesize(size: int | None) -> str:
        return human_size(size)

    @app.template_filter("duration")
    def seconds_taken(seconds: float | None) -> str:
        return human_duration(seconds)

    @app.template_filter("link_jobs")
    def link_jobs(message: str) -> Markup:
        """A message that names a job ("… is running (job 9de6…)") links to that job's page."""
        escaped = str(escape(message))
        linked = JOB_MENTION.sub(lambda m: f'<a href="{url_for("jobs.show", job_id=m[1])}">job {m[1]}</a>', escaped)
        return Markup(linked)  # noqa: S704 - the message is escaped above and a job id is hex

    @app.template_filter("ago")
    def ago(moment) -> str:
        return human_age(moment)

    @app.template_filter("age")
    def age(seconds: int) -> str:
        return duration(timedelta(seconds=seconds))  # as alerts say it: 2d 3h 5m

    @app.template_filter("localtime")
    def localtime(moment) -> str:
        return in_display_zone(moment, "%Y-%m-%d %I:%M:%S %p %Z")

    @app.template_filter("clock")
    def clock(moment) -> str:
        """Only the time of day ("04:28 PM IST"), for moments within the hour."""
        return in_display_zone(moment, "%I:%M %p %Z")

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if services.settings().session_cookie_secure:  # served over HTTPS: browsers should never try plain HTTP
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if request.path != "/healthz" and "Cache-Control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if wants_json():
            return jsonify(error=exc.description), exc.code
        return render_template("error.html", error=exc), exc.code

    @app.errorhandler(Refused)
    def refused(exc: Refused):
        """The one place a refusal of the application layer becomes an HTTP answer."""
        return http_error(default_exceptions[exc.status](str(exc)))


def human_size(size: int | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def in_display_zone(moment, layout: str) -> str:
    if moment is None:
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:  # the console store keeps naive UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(services.settings().zone).strftime(layout)


def human_age(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago, in words: "just now", "12 min ago", "5 h ago", "3 days ago"."""
    if moment is None:
        return ""
    if moment.tzinfo is None:  # the console store keeps naive UTC
        moment = moment.replace(tzinfo=UTC)
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} days ago"


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    return f"{minutes // 60} h {minutes % 60} min"


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"
