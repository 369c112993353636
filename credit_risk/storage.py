"""Read local paths and ``gs://`` URIs through one module.

Only the operations the components need today (read a text file, get a local copy of a file);
google-cloud-storage is imported lazily so local paths need no cloud libraries. The full storage
layer (streaming, checksums, retries, atomic publish) is issue 7.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from pathlib import Path

GCS_SCHEME = "gs://"


def is_gcs(uri: str) -> bool:
    return str(uri).startswith(GCS_SCHEME)


def _split_gcs(uri: str) -> tuple[str, str]:
    bucket, _, blob = uri[len(GCS_SCHEME) :].partition("/")
    if not bucket:
        raise ValueError(f"not a gs://bucket/path URI: {uri!r}")
    return bucket, blob


def _client():  # pragma: no cover - exercised against the emulator in the storage tests
    from google.cloud import storage as gcs

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return gcs.Client(
            project=os.environ.get("GCLOUD_PROJECT", "test"), credentials=AnonymousCredentials()
        )
    return gcs.Client()


def join(base: str, *parts: str) -> str:
    if is_gcs(base):
        return posixpath.join(base, *parts)
    return str(Path(base, *parts))


def parent(uri: str) -> str:
    if is_gcs(uri):
        return posixpath.dirname(uri.rstrip("/"))
    return str(Path(uri).parent)


def read_text(uri: str) -> str:
    if is_gcs(uri):
        bucket, blob = _split_gcs(uri)
        b = _client().bucket(bucket).blob(blob)
        if not b.exists():
            raise FileNotFoundError(uri)
        return b.download_as_text()
    return Path(uri).read_text()


def local_copy(uri: str, workdir: str | None = None) -> str:
    """A local file path holding ``uri``'s bytes (the path itself when already local)."""
    if not is_gcs(uri):
        if not Path(uri).exists():
            raise FileNotFoundError(uri)
        return str(uri)
    bucket, blob = _split_gcs(uri)
    target = Path(workdir or tempfile.mkdtemp(prefix="credit-risk-")) / posixpath.basename(blob)
    b = _client().bucket(bucket).blob(blob)
    if not b.exists():
        raise FileNotFoundError(uri)
    b.download_to_filename(str(target))
    return str(target)
