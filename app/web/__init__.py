"""The web layer: blueprints by feature, the sign-in rules they share (access.py), the hooks around
every request (hooks.py), the template filters (filters.py) and the error answers (errors.py)."""

from __future__ import annotations

from flask import Flask

from app.formatting import human_age

__all__ = ["human_age", "register_blueprints"]  # human_age: the pages' "how long ago", for tests


def register_blueprints(app: Flask) -> None:
    from app.web import access
    from app.web.activity.views import bp as activity_bp
    from app.web.api.views import bp as api_bp
    from app.web.audit.views import bp as audit_bp
    from app.web.auth import sso
    from app.web.auth.views import bp as auth_bp
    from app.web.backups.views import bp as backups_bp
    from app.web.errors import register_errorhandlers
    from app.web.filters import register_filters
    from app.web.health.views import bp as health_bp
    from app.web.hooks import register_hooks
    from app.web.jobs.views import bp as jobs_bp
    from app.web.maintenance.views import bp as maintenance_bp
    from app.web.metrics.views import bp as metrics_bp
    from app.web.people.views import bp as people_bp
    from app.web.restore.views import bp as restore_bp
    from app.web.uploads.views import bp as uploads_bp

    access.init_app(app)
    sso.init_app(app, app.config["SETTINGS"].oidc)
    pages = (auth_bp, sso.bp, backups_bp, restore_bp, jobs_bp, people_bp, audit_bp, maintenance_bp, uploads_bp)
    for blueprint in (*pages, api_bp, health_bp, metrics_bp, activity_bp):
        app.register_blueprint(blueprint)
    register_hooks(app)
    register_filters(app)
    register_errorhandlers(app)
