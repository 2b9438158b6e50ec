"""Signing in and out: the password and code forms, and single sign-on."""

from app.web.access import start_session

__all__ = ["start_session"]  # tests sign people in with it
