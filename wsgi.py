"""Entry point for gunicorn (`gunicorn wsgi:app`) and the CLI (`flask --app wsgi …`)."""

import sys

from app import create_app
from app.config import ConfigError
from app.store.schema import StoreBehind

try:
    app = create_app()
except ConfigError as exc:
    # One line naming the variable, never a traceback.
    sys.exit(f"pgconsole: configuration error: {exc}")
except StoreBehind as exc:
    sys.exit(f"pgconsole: {exc}")
