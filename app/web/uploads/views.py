"""The Upload page: an admin sends a dump made elsewhere. The page's script PUTs the file itself to the API
(`PUT /api/setting/uploads/<name>`, with the session and its CSRF token), so the body streams into the store:
a form post would be parsed, and spooled to the web server's disk, before anything could check it."""

from __future__ import annotations

from flask import Blueprint, render_template, url_for

from app import services
from app.domain.upload import ONLY_CUSTOM_FORMAT
from app.web.access import role_required

bp = Blueprint("uploads", __name__)


@bp.route("/uploads/new")
@bp.route("/targets/<target>/uploads/new")
@role_required("admin")
def new():
    settings = services.settings()
    api = url_for("api.upload_dump", name="NAME")
    return render_template("uploads/new.html", api=api, only_custom_format=ONLY_CUSTOM_FORMAT,
                           target_name=settings.target_name, database=settings.target.dbname)  # fmt: skip
