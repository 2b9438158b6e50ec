"""The console's rules (naming, retention, provenance, backup and restore steps), given their values as
arguments and reaching the server, the store and the tools only through app.adapters."""
