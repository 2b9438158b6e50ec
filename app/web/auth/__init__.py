"""Signing in and out: the password and code forms, and single sign-on."""
