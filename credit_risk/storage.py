"""Read local paths and ``gs://`` URIs through one module.

Read a text file, get a local copy of a file, and publish a directory as an immutable version
(``publish_dir``: content manifest written last). google-cloud-storage is imported lazily so local
paths need no cloud libraries; tests run it against fake-gcs-server on 127.0.0.1
(tests/pipeline/test_storage_gcs.py). Streaming reads, checksums and retry policy are issue 7.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import json
import os
import posixpath
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import IO, Any

from credit_risk.errors import CreditRiskError

GCS_SCHEME = "gs://"
PUBLISHED_MARKER = "_PUBLISHED.json"  # written last: a version without it was never published


class PublishError(CreditRiskError):
    """A published version exists with other content (versions are immutable) or upload failed."""


def is_gcs(uri: str) -> bool:
    return str(uri).startswith(GCS_SCHEME)


def _split_gcs(uri: str) -> tuple[str, str]:
    bucket, _, blob = uri[len(GCS_SCHEME) :].partition("/")
    if not bucket:
        raise ValueError(f"not a gs://bucket/path URI: {uri!r}")
    return bucket, blob


def _client() -> Any:  # google.cloud.storage.Client, imported lazily
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
        return str(b.download_as_text())
    return Path(uri).read_text()


def _has_wildcard(uri: str) -> bool:
    return any(c in uri for c in "*?[")


def list_files(uri: str, suffixes: tuple[str, ...] = (".csv", ".parquet")) -> list[str]:
    """The data files ``uri`` names, sorted: one file, every matching file in a directory/prefix,
    or a glob (``gs://bucket/snap/part-*.parquet``). Raises FileNotFoundError when none match."""
    if is_gcs(uri):
        bucket, name = _split_gcs(uri)
        if _has_wildcard(name):
            prefix = name[: min(name.find(c) for c in "*?[" if c in name)]
            names = [b.name for b in _client().list_blobs(bucket, prefix=prefix)]
            found = [n for n in names if fnmatch.fnmatchcase(n, name)]
        else:
            found = [b.name for b in _client().list_blobs(bucket, prefix=name.rstrip("/"))]
            exact = [n for n in found if n == name]
            found = exact or [
                n for n in found if n.startswith(name.rstrip("/") + "/") and n.endswith(suffixes)
            ]
        files = sorted(f"{GCS_SCHEME}{bucket}/{n}" for n in found)
    elif _has_wildcard(uri):
        files = sorted(p for p in glob.glob(uri) if Path(p).is_file())
    elif Path(uri).is_dir():
        files = sorted(str(p) for p in Path(uri).iterdir() if p.is_file() and p.name.endswith(suffixes))
    else:
        files = [uri] if Path(uri).is_file() else []
    if not files:
        raise FileNotFoundError(f"no data files at {uri} (looked for {', '.join(suffixes)})")
    return files


def open_read(uri: str) -> IO[bytes]:
    """A binary stream of ``uri``: a local file, or a GCS object read in chunks (never whole)."""
    if is_gcs(uri):
        bucket, name = _split_gcs(uri)
        blob = _client().bucket(bucket).blob(name)
        if not blob.exists():
            raise FileNotFoundError(uri)
        stream: IO[bytes] = blob.open("rb", chunk_size=8 * 1024 * 1024)
        return stream
    return open(uri, "rb")


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


def _manifest(local_dir: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``local_dir``."""
    files = sorted(p for p in local_dir.rglob("*") if p.is_file())
    return {p.relative_to(local_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def publish_dir(local_dir: str | Path, target: str) -> bool:
    """Publish ``local_dir`` as the immutable version ``target`` (local path or gs://).

    The content manifest is written last as ``_PUBLISHED.json``; only a target holding it counts as
    published. Publishing identical content again is a no-op (returns False); different content at
    a published target raises PublishError - a version is never overwritten. Returns True when it
    published. Locally the copy is renamed into place (atomic); on GCS leftovers of an interrupted
    attempt (no marker) are replaced.
    """
    source = Path(local_dir)
    manifest = _manifest(source)
    if not manifest:
        raise PublishError(f"nothing to publish: {source} has no files")
    marker = json.dumps({"files": manifest}, indent=2, sort_keys=True)
    if is_gcs(target):
        return _publish_gcs(source, manifest, marker, target.rstrip("/"))
    dest = Path(target)
    if dest.exists():
        _check_same(dest / PUBLISHED_MARKER, marker, target)
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.parent / f".{dest.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        shutil.copytree(source, partial)
        (partial / PUBLISHED_MARKER).write_text(marker)
        os.rename(partial, dest)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return True


def _check_same(marker_path: Path, marker: str, target: str) -> None:
    if not marker_path.exists():
        raise PublishError(f"{target} exists but was never published ({PUBLISHED_MARKER} missing); remove it")
    if marker_path.read_text() != marker:
        raise PublishError(
            f"{target} is already published with different content; versions are never overwritten"
        )


def _publish_gcs(source: Path, manifest: dict[str, str], marker: str, target: str) -> bool:
    bucket_name, prefix = _split_gcs(target)
    bucket = _client().bucket(bucket_name)
    marker_blob = bucket.blob(f"{prefix}/{PUBLISHED_MARKER}")
    if marker_blob.exists():
        if marker_blob.download_as_text() != marker:
            raise PublishError(
                f"{target} is already published with different content; versions are never overwritten"
            )
        return False
    for leftover in bucket.list_blobs(prefix=prefix + "/"):
        leftover.delete()
    for relative in manifest:
        bucket.blob(f"{prefix}/{relative}").upload_from_filename(str(source / relative))
    # if_generation_match=0: of two concurrent publishers only one marker wins
    marker_blob.upload_from_string(marker, content_type="application/json", if_generation_match=0)
    return True


def download_published(uri: str, local_dir: str | Path) -> Path:
    """Copy a published version (``publish_dir``) to ``local_dir`` and verify every file against
    its ``_PUBLISHED.json`` checksums; a version without the marker was never published and is
    refused, as is any file whose bytes do not match."""
    dest = Path(local_dir)
    dest.mkdir(parents=True, exist_ok=True)
    uri = uri.rstrip("/")
    try:
        manifest = json.loads(read_text(join(uri, PUBLISHED_MARKER)))["files"]
    except FileNotFoundError:
        raise PublishError(f"{uri} is not a published model version: {PUBLISHED_MARKER} is missing") from None
    except (ValueError, KeyError, TypeError) as e:
        raise PublishError(f"{uri}/{PUBLISHED_MARKER} is unreadable: {e}") from e
    if is_gcs(uri):
        bucket_name, prefix = _split_gcs(uri)
        bucket = _client().bucket(bucket_name)
        for relative in manifest:
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            bucket.blob(f"{prefix}/{relative}").download_to_filename(str(target))
    else:
        for relative in manifest:
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(uri) / relative, target)
    got = _manifest(dest)
    bad = sorted(name for name, digest in manifest.items() if got.get(name) != digest)
    if bad:
        raise PublishError(f"{uri}: checksum mismatch after download for {bad}")
    return dest
