"""How an error reaches the caller: a JSON body for the API and /healthz, the error page for people."""

from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, default_exceptions

from app.operations import Refused


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"


def http_error(exc: HTTPException):
    if wants_json():
        return jsonify(error=exc.description), exc.code
    return render_template("error.html", error=exc), exc.code


def refused(exc: Refused):
    """The one place a refusal of the application layer becomes an HTTP answer."""
    return http_error(default_exceptions[exc.status](str(exc)))


def register_errorhandlers(app: Flask) -> None:
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Refused, refused)
