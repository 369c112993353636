"""Read and write local paths, ``gs://`` and ``s3://`` URIs through one interface.

Read a text file, stream a file, get a local copy, upload a file, and publish a directory as an
immutable version (``publish_dir`` / ``DirectoryWriter``: content manifest written last; readers
refuse a prefix without it). The scheme picks the backend (``BACKENDS``); this module is the only
place in the package that looks at a data URI's scheme. Each backend keeps the same guarantees -
retries with backoff, end-to-end checksums on upload and download, chunked transfers, clear
errors naming the URI - with its own cloud's means (credit_risk/storage/gcs.py, s3.py; design
notes in docs/storage.md). Cloud libraries are imported lazily: local paths need none.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import os
import posixpath
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import IO, Any

from credit_risk.storage import gcs, s3
from credit_risk.storage.base import (
    PUBLISHED_MARKER,
    READ_CHUNK_BYTES,
    Backend,
    ChecksumError,
    PublishError,
    sha256_file,
)

__all__ = [
    "BACKENDS",
    "PIPELINE_ROOT_SCHEMES",
    "PUBLISHED_MARKER",
    "READ_CHUNK_BYTES",
    "ChecksumError",
    "DirectoryWriter",
    "PublishError",
    "check_pipeline_root",
    "download_published",
    "exists",
    "is_published",
    "is_remote",
    "join",
    "list_files",
    "local_copy",
    "open_read",
    "parent",
    "publish_dir",
    "read_bytes",
    "read_text",
    "require_published",
    "scheme",
    "upload_file",
    "write_text",
]

BACKENDS: dict[str, Backend] = {gcs.SCHEME: gcs, s3.SCHEME: s3}


# where a KFP backend's launcher can put a run's artifacts (kfp 2.13: GCS, S3, and the MinIO
# that ships with Kubeflow); the local runner's root is a local directory instead
PIPELINE_ROOT_SCHEMES = ("gs://", "s3://", "minio://")


def check_pipeline_root(root: str) -> str:
    """``root`` if a KFP cluster can store a run's artifacts there, else ValueError saying why."""
    if not str(root).startswith(PIPELINE_ROOT_SCHEMES) or not str(root).partition("://")[2].strip("/"):
        raise ValueError(
            f"pipeline root {root!r}: a cluster run stores its artifacts on an object store - "
            f"give {' or '.join(s + 'bucket/prefix' for s in PIPELINE_ROOT_SCHEMES)}"
        )
    return str(root)


def scheme(uri: str) -> str:
    """``gs://``, ``s3://``, or ``""`` for a local path."""
    return next((s for s in BACKENDS if str(uri).startswith(s)), "")


def _backend(uri: str) -> Backend | None:
    return BACKENDS.get(scheme(uri))


def is_remote(uri: str) -> bool:
    """Whether ``uri`` names an object store (gs://, s3://) rather than a local path."""
    return _backend(uri) is not None


def readable_artifact_uri(uri: str) -> str:
    """A KFP output artifact's URI as this package's readers take it: ``minio://bucket/key`` (a
    stock Kubeflow's pipeline root) is the same object on MinIO's S3 API, ``s3://bucket/key`` (with
    the endpoint from ``credit-risk compile --s3-endpoint``); gs://, s3:// and local paths as they are."""
    if str(uri).startswith("minio://"):
        return s3.SCHEME + str(uri)[len("minio://") :]
    return str(uri).rstrip("/")


def hadoop_uri(uri: str) -> str:
    """``uri`` as Spark's Hadoop file systems name it: ``s3://`` becomes ``s3a://`` (the S3A
    connector), ``gs://`` stays (the GCS connector), a local path becomes ``file://<absolute>``."""
    if scheme(uri) == s3.SCHEME:
        return "s3a://" + str(uri)[len(s3.SCHEME) :]
    if scheme(uri) or "://" in str(uri):
        return str(uri)
    return Path(uri).resolve().as_uri()


def join(base: str, *parts: str) -> str:
    if is_remote(base):
        return posixpath.join(base, *parts)
    return str(Path(base, *parts))


def parent(uri: str) -> str:
    if is_remote(uri):
        return posixpath.dirname(uri.rstrip("/"))
    return str(Path(uri).parent)


def read_bytes(uri: str) -> bytes:
    backend = _backend(uri)
    return backend.read_bytes(uri) if backend else Path(uri).read_bytes()


def read_text(uri: str) -> str:
    return read_bytes(uri).decode()


def exists(uri: str) -> bool:
    backend = _backend(uri)
    return backend.exists(uri) if backend else Path(uri).exists()


def upload_file(local_path: str | Path, uri: str, content_type: str | None = None) -> None:
    """Upload one file to an object store, retried, chunked when large, verified after."""
    backend = _backend(uri)
    if backend is None:
        raise ValueError(f"upload_file needs a gs:// or s3:// URI, not {uri!r}")
    backend.upload_file(Path(local_path), uri, content_type)


def write_text(uri: str, text: str) -> None:
    """Write a small text object (or local file) whole."""
    backend = _backend(uri)
    if backend is None:
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        Path(uri).write_text(text)
        return
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(text)
    try:
        backend.upload_file(Path(f.name), uri)
    finally:
        os.unlink(f.name)


def _has_wildcard(uri: str) -> bool:
    return any(c in uri for c in "*?[")


def list_files(uri: str, suffixes: tuple[str, ...] = (".csv", ".parquet")) -> list[str]:
    """The data files ``uri`` names, sorted: one file, every matching file in a directory/prefix,
    or a glob (``s3://bucket/snap/part-*.parquet``). Raises FileNotFoundError when none match."""
    backend = _backend(uri)
    if backend is not None:
        if _has_wildcard(uri):
            found = [u for u in backend.list_prefix(uri[: min(uri.find(c) for c in "*?[" if c in uri)])
                     if fnmatch.fnmatchcase(u, uri)]  # fmt: skip
        else:
            found = backend.list_prefix(uri.rstrip("/"))
            exact = [u for u in found if u == uri]
            found = exact or [
                u for u in found if u.startswith(uri.rstrip("/") + "/") and u.endswith(suffixes)
            ]
        files = sorted(found)
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
    """A binary stream of ``uri``: a local file, or an object read in chunks (never whole),
    verified against the stored checksum when the stream ends."""
    backend = _backend(uri)
    return backend.open_read(uri) if backend else open(uri, "rb")


def local_copy(uri: str, workdir: str | None = None) -> str:
    """A local file path holding ``uri``'s bytes (the path itself when already local)."""
    backend = _backend(uri)
    if backend is None:
        if not Path(uri).exists():
            raise FileNotFoundError(uri)
        return str(uri)
    target = Path(workdir or tempfile.mkdtemp(prefix="credit-risk-")) / posixpath.basename(uri.rstrip("/"))
    backend.download(uri, target)
    return str(target)


def _manifest(local_dir: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``local_dir``."""
    files = sorted(p for p in local_dir.rglob("*") if p.is_file())
    return {p.relative_to(local_dir).as_posix(): sha256_file(p) for p in files}


class DirectoryWriter:
    """Publish a directory file by file, so an output never has to fit on local disk at once.

    ``add`` moves a finished file into place as soon as it is complete (object store: uploads it,
    verified, and deletes the local file; locally: moves it into a hidden staging directory beside
    the target). ``commit`` writes the ``_PUBLISHED.json`` manifest (sha256 of every file) last -
    on an object store as a create-only write (of two publishers one wins), locally by renaming
    the staging directory into place. Until then readers refuse the target (``require_published``);
    ``abort`` (also on an exception inside ``with``) removes the local staging directory; on an
    object store the files already uploaded stay without a marker, ignored, and are replaced by
    the next writer of that target.
    """

    def __init__(self, target: str) -> None:
        self.target = str(target).rstrip("/")
        self.manifest: dict[str, str] = {}
        self._staging: Path | None = None
        self._done = False
        self._backend = _backend(self.target)
        if self._backend is not None:
            if is_published(self.target):
                raise PublishError(f"{self.target} is already published; versions are never overwritten")
            self._backend.delete_prefix(self.target)
            return
        dest = Path(self.target)
        if dest.is_dir() and not any(dest.iterdir()):
            dest.rmdir()  # an empty directory (e.g. an output path KFP created) holds no version
        if dest.exists():
            if (dest / PUBLISHED_MARKER).exists():
                raise PublishError(f"{self.target} is already published; versions are never overwritten")
            raise PublishError(
                f"{self.target} exists but was never published ({PUBLISHED_MARKER} missing); remove it"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        self._staging = dest.parent / f".{dest.name}.partial-{uuid.uuid4().hex[:8]}"
        self._staging.mkdir()

    def add(self, local_path: str | Path, relative: str, keep: bool = False) -> None:
        """Place ``local_path`` at ``<target>/<relative>``; the local file is consumed unless ``keep``."""
        source = Path(local_path)
        if self._done:
            raise PublishError(f"{self.target}: already committed or aborted")
        self.manifest[relative] = sha256_file(source)
        if self._backend is not None:
            self._backend.upload_file(source, f"{self.target}/{relative}")
            if not keep:
                source.unlink()
            return
        assert self._staging is not None
        placed = self._staging / relative
        placed.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copyfile if keep else shutil.move)(str(source), str(placed))

    def commit(self) -> None:
        if not self.manifest:
            raise PublishError(f"nothing to publish at {self.target}: no files were added")
        marker = json.dumps({"files": self.manifest}, indent=2, sort_keys=True)
        if self._backend is not None:
            self._backend.create_only(f"{self.target}/{PUBLISHED_MARKER}", marker)
        else:
            assert self._staging is not None
            (self._staging / PUBLISHED_MARKER).write_text(marker)
            os.rename(self._staging, self.target)
        self._done = True

    def abort(self) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
        self._done = True

    def __enter__(self) -> DirectoryWriter:
        return self

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        if not self._done:
            self.abort()


def publish_dir(local_dir: str | Path, target: str) -> bool:
    """Publish ``local_dir`` as the immutable version ``target`` (local path, gs:// or s3://).

    The content manifest is written last as ``_PUBLISHED.json``; only a target holding it counts as
    published. Publishing identical content again is a no-op (returns False); different content at
    a published target raises PublishError - a version is never overwritten. Returns True when it
    published. Locally the copy is renamed into place (atomic); on an object store leftovers of an
    interrupted attempt (no marker) are replaced.
    """
    source = Path(local_dir)
    manifest = _manifest(source)
    if not manifest:
        raise PublishError(f"nothing to publish: {source} has no files")
    marker = json.dumps({"files": manifest}, indent=2, sort_keys=True)
    target = str(target).rstrip("/")
    if is_published(target):
        if read_text(join(target, PUBLISHED_MARKER)) != marker:
            raise PublishError(
                f"{target} is already published with different content; versions are never overwritten"
            )
        return False
    if not is_remote(target) and Path(target).exists() and any(Path(target).iterdir()):
        raise PublishError(f"{target} exists but was never published ({PUBLISHED_MARKER} missing); remove it")
    with DirectoryWriter(target) as writer:
        for relative in manifest:
            writer.add(source / relative, relative, keep=True)
        writer.commit()
    return True


def is_published(uri: str) -> bool:
    """Whether ``uri`` is a directory ``publish_dir`` completed (its marker exists)."""
    return exists(join(uri.rstrip("/"), PUBLISHED_MARKER))


def require_published(uri: str) -> None:
    """Refuse a directory whose publish never completed (no marker): it may be half written."""
    if not is_published(uri):
        raise PublishError(
            f"{uri} is not a completed publish ({PUBLISHED_MARKER} missing): an interrupted or failed "
            "write; it is ignored - rerun the step that writes it"
        )


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
    backend = _backend(uri)
    for relative in manifest:
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if backend is not None:
            backend.download(f"{uri}/{relative}", target)
        else:
            shutil.copyfile(Path(uri) / relative, target)
    got = _manifest(dest)
    bad = sorted(name for name, digest in manifest.items() if got.get(name) != digest)
    if bad:
        raise PublishError(f"{uri}: checksum mismatch after download for {bad}")
    return dest
