"""Read and write local paths and ``gs://`` URIs through one module.

Only the handful of operations the components need; google-cloud-storage is imported lazily so the
local path needs no cloud libraries.
"""

from __future__ import annotations

import os
import posixpath
import shutil
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


def exists(uri: str) -> bool:
    if is_gcs(uri):
        bucket, blob = _split_gcs(uri)
        return _client().bucket(bucket).blob(blob).exists()
    return Path(uri).exists()


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


def publish_dir(local_dir: str, uri: str) -> None:
    """Copy a finished local directory to ``uri``. Callers build into a temp dir first."""
    if is_gcs(uri):
        bucket_name, prefix = _split_gcs(uri)
        bucket = _client().bucket(bucket_name)
        for path in sorted(Path(local_dir).rglob("*")):
            if path.is_file():
                rel = path.relative_to(local_dir).as_posix()
                bucket.blob(posixpath.join(prefix, rel)).upload_from_filename(str(path))
        return
    target = Path(uri)
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(local_dir, target)
