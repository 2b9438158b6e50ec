"""The safety backup a restore makes of the database it replaced, and the rule that guards that database:
it is never dropped before its safety backup is complete and has been read back from the store whole,
with the size and sha256 that were written.
"""

from __future__ import annotations

from collections.abc import Callable

from app.adapters.encryption import Digest
from app.adapters.storage import Storage


def check_stored(storage: Storage, name: str, *, size: int, sha256: str,
                 on_progress: Callable[[int], None] = lambda done: None) -> str | None:  # fmt: skip
    """Read `name` back from the store, as a stream (memory stays flat), and compare it with what was written;
    None when it matches, else what is wrong, in words. `on_progress` gets the bytes read so far."""
    try:
        stored = storage.stat(name)
        if stored is None:
            return f"{name} is not in the store"
        if stored.size != size:
            return f"{name} is {stored.size} bytes in the store, {size} were written"
        digest = Digest()
        for block in storage.open_stream(name):
            digest.update(block)
            on_progress(digest.size)
    except Exception as exc:  # noqa: BLE001 - whatever stops the read, the backup is not proven whole
        return f"{name} could not be read back from the store ({type(exc).__name__}: {str(exc).strip()[:300]})"
    if digest.size != size:
        return f"reading {name} back from the store gave {digest.size} bytes, {size} were written"
    if digest.hexdigest() != sha256:
        return f"{name} read back from the store has sha256 {digest.hexdigest()}, {sha256} was written"
    return None
