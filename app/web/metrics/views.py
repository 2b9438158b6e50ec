"""/metrics for Prometheus: only with `Authorization: Bearer <METRICS_TOKEN>`, and 404 while no token is set."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, request
from prometheus_client import CONTENT_TYPE_LATEST

from app import services
from app.health import metrics

bp = Blueprint("metrics", __name__)


@bp.route("/metrics")
def scrape():
    token = services.settings().metrics_token
    if not token:
        abort(404)  # metrics are off: the URL does not exist
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return Response("a valid METRICS_TOKEN is needed (Authorization: Bearer …)\n", 401,
                        {"WWW-Authenticate": 'Bearer realm="metrics"'}, mimetype="text/plain")  # fmt: skip
    return Response(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
