"""Backups encrypted to age recipients, so that `age -d` and `pg_restore` get the data back anywhere.

The cipher is pyrage's (Python bindings of the `age` Rust crate, the format's reference
implementation in Rust). Its `encrypt_io`/`decrypt_io` read and write file-like objects in
64 KiB chunks, so a dump of any size passes through in constant memory, inside the worker
process: no extra process in the pipe and no temp file.

Recipients are public keys and may appear anywhere (settings, manifests, pages). Identities
are private keys: they are read from the identity file by the worker when it decrypts, and
never put in a message, a log, Redis or a job.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyrage
from pyrage import ssh, x25519

FORMAT = "age"
SSH_PREFIXES = ("ssh-ed25519 ", "ssh-rsa ")
# What pyrage says when no identity opens the header (the age crate's NoMatchingKeys).
_NO_MATCHING_KEYS = "No matching keys found"


class EncryptionError(Exception):
    """Encrypting or decrypting failed; the message never holds key material."""


class NoMatchingKey(EncryptionError):
    """None of the worker's identities can open this backup's header."""


def parse_recipients(text: str) -> tuple[str, ...]:
    """Recipients from a comma- or line-separated list (`#` starts a comment line), normalized.

    Raises ValueError naming the first malformed entry (public keys, so safe to show).
    """
    found = []
    for line in text.replace(",", "\n").splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        found.append(_normalized(entry))
    return tuple(dict.fromkeys(found))


def _normalized(entry: str) -> str:
    shown = entry if len(entry) <= 80 else entry[:77] + "..."
    if entry.startswith(SSH_PREFIXES):
        key = " ".join(entry.split()[:2])  # the comment after the key is not part of it
        try:
            ssh.Recipient.from_str(key)
        except pyrage.RecipientError:
            raise ValueError(f"{shown!r} is not a valid ssh-ed25519 or ssh-rsa public key") from None
        return key
    if entry.startswith("AGE-SECRET-KEY-"):
        raise ValueError("holds a private key (AGE-SECRET-KEY-…); give its public key (age1…, see age-keygen -y)")
    try:
        x25519.Recipient.from_str(entry)
    except pyrage.RecipientError:
        raise ValueError(f"{shown!r} is not an age recipient (age1… or ssh-ed25519 …)") from None
    return entry


def _recipient(key: str):
    return ssh.Recipient.from_str(key) if key.startswith(SSH_PREFIXES) else x25519.Recipient.from_str(key)


def load_identities(path: str) -> list:
    """The identities in an age identity file (AGE-SECRET-KEY-1… lines) or an OpenSSH private key.

    Errors name the file and the line number, never its content.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise EncryptionError(f"cannot read the identity file {path} ({exc.strerror or exc})") from None
    if b"-----BEGIN OPENSSH PRIVATE KEY-----" in data:
        try:
            return [ssh.Identity.from_buffer(data)]
        except pyrage.IdentityError:
            raise EncryptionError(f"the identity file {path} holds an SSH key age cannot use "
                                  "(passphrase-protected keys are not supported)") from None  # fmt: skip
    identities = []
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        try:
            identities.append(x25519.Identity.from_str(entry))
        except pyrage.IdentityError:
            raise EncryptionError(f"line {number} of the identity file {path} is not an age identity") from None
    if not identities:
        raise EncryptionError(f"the identity file {path} holds no identity")
    return identities


@dataclass
class Digest:
    """sha256 and length of the bytes that passed."""

    size: int = 0
    sha: hashlib._Hash = field(default_factory=hashlib.sha256)

    def update(self, block: bytes) -> None:
        self.sha.update(block)
        self.size += len(block)

    def hexdigest(self) -> str:
        return self.sha.hexdigest()


class _Source:
    """A readable file over an iterator of blocks, for pyrage; remembers an exception it raised."""

    def __init__(self, blocks: Iterable[bytes], digest: Digest):
        self._blocks: Iterator[bytes] = iter(blocks)
        self._pending = memoryview(b"")
        self.digest = digest
        self.error: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        try:
            while not self._pending:
                block = next(self._blocks, None)
                if block is None:
                    return b""
                self.digest.update(block)
                self._pending = memoryview(block)
            size = len(self._pending) if size is None or size < 0 else size
            piece, self._pending = self._pending[:size], self._pending[size:]
            return bytes(piece)
        except BaseException as exc:
            self.error = exc
            raise

    def drain(self) -> None:
        """Read what is left, for the digest (after pyrage gave up)."""
        while self.read(1 << 20):
            pass


class _Sink:
    """A writable file for pyrage that passes each block on; remembers an exception it raised."""

    def __init__(self, write: Callable[[bytes], object]):
        self._write = write
        self.error: BaseException | None = None

    def write(self, block: bytes) -> int:
        try:
            self._write(block)
        except BaseException as exc:
            self.error = exc
            raise
        return len(block)

    def flush(self) -> None:
        pass


def encrypt_stream(
    blocks: Iterable[bytes], recipients: tuple[str, ...], write: Callable[[bytes], object], plain: Digest
) -> None:
    """Encrypt `blocks` to the recipients into `write`, hashing the plain bytes into `plain`.

    An exception raised by `blocks` or `write` (a timeout, a storage error) is raised as itself,
    not as pyrage's wrapper, so callers see why the backup stopped.
    """
    source, sink = _Source(blocks, plain), _Sink(write)
    try:
        pyrage.encrypt_io(source, sink, [_recipient(r) for r in recipients])
    except pyrage.EncryptError as exc:
        raise (source.error or sink.error or EncryptionError(f"age encryption failed: {exc}")) from None


def decrypt_stream(blocks: Iterable[bytes], identities: list, write: Callable[[bytes], object], stored: Digest) -> None:
    """Decrypt `blocks` into `write`, hashing the stored (encrypted) bytes into `stored`.

    When the ciphertext is damaged the rest is still read into `stored`, so that the caller can
    tell a checksum mismatch (the file changed) from a file that never decrypted.
    """
    source, sink = _Source(blocks, stored), _Sink(write)
    try:
        pyrage.decrypt_io(source, sink, identities)
    except (pyrage.DecryptError, OSError) as exc:
        if source.error or sink.error:
            raise (source.error or sink.error) from None
        if _NO_MATCHING_KEYS in str(exc):
            raise NoMatchingKey(str(exc)) from None
        source.drain()
        raise EncryptionError(f"the age file cannot be decrypted ({exc})") from None


def no_matching_key_message(recipients: Iterable[str]) -> str:
    """The job's error when the worker cannot open a backup (the wording the issue asks for)."""
    named = ", ".join(recipients) or "age recipients that no manifest names"
    return f"this backup is encrypted to {named}, and none of the worker's keys matches"
