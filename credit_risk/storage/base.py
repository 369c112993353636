"""What every storage backend shares: the errors, the chunk sizes, local digests, the interface."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import IO, Protocol

from credit_risk.errors import CreditRiskError

PUBLISHED_MARKER = "_PUBLISHED.json"  # written last: a version without it was never published
READ_CHUNK_BYTES = 8 * 1024 * 1024


class PublishError(CreditRiskError):
    """A published version exists with other content (versions are immutable) or upload failed."""


class ChecksumError(CreditRiskError):
    """Bytes read or written do not match the object's checksum: corrupted in transit or at rest."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(READ_CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


class Backend(Protocol):
    """An object store addressed by ``<scheme>bucket/key`` URIs (credit_risk.storage.BACKENDS).

    Every method takes whole URIs and raises FileNotFoundError for a missing object or bucket
    (naming the URI), PermissionError for refused credentials, ChecksumError for bytes that do
    not match what was stored; retries with backoff are each backend's own business."""

    def read_bytes(self, uri: str) -> bytes: ...

    def exists(self, uri: str) -> bool: ...

    def upload_file(self, local_path: Path, uri: str, content_type: str | None = None) -> None:
        """Upload one file; verify the stored object against the local bytes; a mismatch deletes
        the object and raises ChecksumError."""

    def list_prefix(self, uri: str) -> list[str]:
        """URIs of every object whose name starts with ``uri``'s key (a plain prefix, no glob)."""

    def open_read(self, uri: str) -> IO[bytes]:
        """A sequential binary stream, read in bounded chunks, verified when it ends."""

    def download(self, uri: str, target: Path) -> None:
        """Copy the object to ``target``, verified; a failed download leaves no file."""

    def delete_prefix(self, uri: str) -> None:
        """Delete every object under ``uri/`` (leftovers of an unpublished write)."""

    def create_only(self, uri: str, text: str) -> None:
        """Write a small object only if none exists at ``uri`` (of two writers one wins);
        PublishError for the loser."""
