"""The pure domain: naming, retention, storage, pg tooling, backup and restore steps.

Nothing here imports Flask or RQ; every function takes plain values and can be tested alone.
"""
