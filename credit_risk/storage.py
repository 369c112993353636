"""Read local paths and ``gs://`` URIs through one module.

Read a text file, stream a file, get a local copy, upload a file, and publish a directory as an
immutable version (``publish_dir``: content manifest written last; readers refuse a prefix
without it). Every GCS call goes through here with one policy:

- retries with exponential backoff on 429/408/5xx, connection resets and timeouts (``RETRY``),
  including uploads (safe: we only write to names nobody reads before the marker exists);
- crc32c verified on every download (whole-object downloads by the library, streaming reads by
  ``_VerifiedReader`` at end of stream) and on every upload (the server's crc32c of the stored
  object must equal the local file's);
- uploads above 8 MiB (google-cloud-storage's multipart limit) are resumable in
  ``UPLOAD_CHUNK_BYTES`` chunks, so a dropped connection resends one chunk, not the file.

google-cloud-storage is imported lazily so local paths need no cloud libraries; tests run it
against fake-gcs-server on 127.0.0.1 behind a fault-injecting proxy (tests/pipeline/test_storage_gcs.py).
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import io
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


UPLOAD_CHUNK_BYTES = 8 * 1024 * 1024  # resumable chunk (a multiple of 256 KiB, GCS's rule)
READ_CHUNK_BYTES = 8 * 1024 * 1024
TIMEOUT = (10.0, 120.0)  # (connect, read) seconds per HTTP request; a stalled request is retried


class PublishError(CreditRiskError):
    """A published version exists with other content (versions are immutable) or upload failed."""


class ChecksumError(CreditRiskError):
    """Bytes read or written do not match the object's checksum: corrupted in transit or at rest."""


RETRY_DEADLINE_SECONDS = float(os.environ.get("CREDIT_RISK_GCS_RETRY_DEADLINE", "300"))


def retry_policy() -> Any:
    """google-cloud-storage's retry predicate (429, 408, 5xx, connection errors, timeouts) with
    backoff 0.25 s doubling to 8 s, giving up after RETRY_DEADLINE_SECONDS."""
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_delay(initial=0.25, multiplier=2.0, maximum=8.0).with_deadline(
        RETRY_DEADLINE_SECONDS
    )


def _crc32c_b64(data_or_path: bytes | Path) -> str:
    """The base64 big-endian crc32c GCS reports, of bytes or of a file read in chunks."""
    import base64

    import google_crc32c

    checksum = google_crc32c.Checksum()
    if isinstance(data_or_path, bytes):
        checksum.update(data_or_path)
    else:
        with open(data_or_path, "rb") as f:
            for block in iter(lambda: f.read(READ_CHUNK_BYTES), b""):
                checksum.update(block)
    return base64.b64encode(checksum.digest()).decode()


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


def _blob(uri: str) -> Any:
    """The blob at ``uri`` with its metadata (size, crc32c); FileNotFoundError when absent."""
    from google.api_core.exceptions import NotFound

    bucket, name = _split_gcs(uri)
    try:
        blob = _client().bucket(bucket).get_blob(name, retry=retry_policy(), timeout=TIMEOUT)
    except NotFound:
        blob = None
    if blob is None:
        raise FileNotFoundError(uri)
    return blob


def _download_error(uri: str, error: Exception) -> Exception:
    from google.resumable_media import DataCorruption

    if isinstance(error, DataCorruption):
        return ChecksumError(f"{uri}: downloaded bytes fail the object's crc32c check ({error})")
    return error


def read_bytes(uri: str) -> bytes:
    if is_gcs(uri):
        blob = _blob(uri)
        try:
            return bytes(blob.download_as_bytes(checksum="crc32c", retry=retry_policy(), timeout=TIMEOUT))
        except Exception as e:
            raise _download_error(uri, e) from e
    return Path(uri).read_bytes()


def read_text(uri: str) -> str:
    return read_bytes(uri).decode()


def exists(uri: str) -> bool:
    if is_gcs(uri):
        try:
            _blob(uri)
            return True
        except FileNotFoundError:
            return False
    return Path(uri).exists()


def upload_file(local_path: str | Path, uri: str, content_type: str | None = None) -> None:
    """Upload one file with retries (resumable, chunked, above 8 MiB) and verify the stored
    object's crc32c against the local bytes; a mismatch deletes the object and raises."""
    bucket, name = _split_gcs(uri)
    path = Path(local_path)
    blob = _client().bucket(bucket).blob(name, chunk_size=UPLOAD_CHUNK_BYTES)
    blob.upload_from_filename(
        str(path), content_type=content_type, checksum="crc32c", retry=retry_policy(), timeout=TIMEOUT
    )
    expected = _crc32c_b64(path)
    if blob.crc32c != expected:  # the library sets blob.crc32c from the server's answer
        blob.delete(retry=retry_policy(), timeout=TIMEOUT)
        raise ChecksumError(f"{uri}: stored crc32c {blob.crc32c} != local {expected}; upload discarded")


def write_text(uri: str, text: str) -> None:
    """Write a small text object (or local file) whole."""
    if not is_gcs(uri):
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        Path(uri).write_text(text)
        return
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(text)
    try:
        upload_file(f.name, uri)
    finally:
        os.unlink(f.name)


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
        blob = _blob(uri)
        reader = blob.open("rb", chunk_size=READ_CHUNK_BYTES, retry=retry_policy(), timeout=TIMEOUT)
        return _VerifiedReader(reader, uri, blob.crc32c, blob.size)  # type: ignore[return-value]
    return open(uri, "rb")


class _VerifiedReader(io.RawIOBase):
    """A sequential read of a GCS object that checks the object's crc32c when the stream ends.

    Range reads (how BlobReader streams) carry no per-range checksum, so the whole stream is
    summed; a seek stops the check (the reader then can't see every byte in order)."""

    def __init__(self, reader: Any, uri: str, crc32c: str | None, size: int | None) -> None:
        import google_crc32c

        self._reader, self._uri, self._expected, self._size = reader, uri, crc32c, size
        self._checksum: Any = google_crc32c.Checksum() if crc32c else None
        self._read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._reader.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self._account(data)
        return n

    def read(self, size: int = -1) -> bytes:
        data = bytes(self._reader.read(size))
        self._account(data)
        return data

    def _account(self, data: bytes) -> None:
        if self._checksum is None:
            return
        self._checksum.update(data)
        self._read += len(data)
        if not data or (self._size is not None and self._read >= self._size):
            import base64

            got = base64.b64encode(self._checksum.digest()).decode()
            self._checksum = None
            if got != self._expected:
                raise ChecksumError(
                    f"{self._uri}: streamed bytes fail the object's crc32c check (got {got}, "
                    f"stored {self._expected}): corrupted in transit or at rest"
                )

    def seekable(self) -> bool:
        return bool(self._reader.seekable())

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        position = int(self._reader.seek(offset, whence))
        if not (position == self._read and self._checksum is not None):
            self._checksum = None  # out-of-order reads: the sum can no longer be checked
        return position

    def tell(self) -> int:
        return int(self._reader.tell())

    def close(self) -> None:
        self._reader.close()
        super().close()


def local_copy(uri: str, workdir: str | None = None) -> str:
    """A local file path holding ``uri``'s bytes (the path itself when already local)."""
    if not is_gcs(uri):
        if not Path(uri).exists():
            raise FileNotFoundError(uri)
        return str(uri)
    blob = _blob(uri)
    target = Path(workdir or tempfile.mkdtemp(prefix="credit-risk-")) / posixpath.basename(blob.name)
    _download(blob, uri, target)
    return str(target)


def _download(blob: Any, uri: str, target: Path) -> None:
    """Download with retries and crc32c verification; a failed download leaves no file."""
    try:
        blob.download_to_filename(str(target), checksum="crc32c", retry=retry_policy(), timeout=TIMEOUT)
    except Exception as e:
        target.unlink(missing_ok=True)
        raise _download_error(uri, e) from e


def _manifest(local_dir: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``local_dir``."""
    files = sorted(p for p in local_dir.rglob("*") if p.is_file())
    return {p.relative_to(local_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(READ_CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


class DirectoryWriter:
    """Publish a directory file by file, so an output never has to fit on local disk at once.

    ``add`` moves a finished file into place as soon as it is complete (gs://: uploads it, with
    retries and a crc32c check, and deletes the local file; locally: moves it into a hidden
    staging directory beside the target). ``commit`` writes the ``_PUBLISHED.json`` manifest
    (sha256 of every file) last - locally by renaming the staging directory into place. Until then
    readers refuse the target (``require_published``); ``abort`` (also on an exception inside
    ``with``) removes the local staging directory; on GCS the files already uploaded stay without
    a marker, ignored, and are replaced by the next writer of that target.
    """

    def __init__(self, target: str) -> None:
        self.target = str(target).rstrip("/")
        self.manifest: dict[str, str] = {}
        self._staging: Path | None = None
        self._done = False
        if is_gcs(self.target):
            if is_published(self.target):
                raise PublishError(f"{self.target} is already published; versions are never overwritten")
            bucket_name, prefix = _split_gcs(self.target)
            bucket = _client().bucket(bucket_name)
            for leftover in bucket.list_blobs(prefix=prefix + "/", retry=retry_policy(), timeout=TIMEOUT):
                leftover.delete(retry=retry_policy(), timeout=TIMEOUT)
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
        self.manifest[relative] = _sha256(source)
        if self._staging is None:
            upload_file(source, f"{self.target}/{relative}")
            if not keep:
                source.unlink()
            return
        placed = self._staging / relative
        placed.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copyfile if keep else shutil.move)(str(source), str(placed))

    def commit(self) -> None:
        if not self.manifest:
            raise PublishError(f"nothing to publish at {self.target}: no files were added")
        marker = json.dumps({"files": self.manifest}, indent=2, sort_keys=True)
        if self._staging is None:
            bucket_name, prefix = _split_gcs(self.target)
            # if_generation_match=0: of two concurrent publishers only one marker wins (and the
            # precondition makes the retried upload idempotent)
            _client().bucket(bucket_name).blob(f"{prefix}/{PUBLISHED_MARKER}").upload_from_string(
                marker, content_type="application/json", if_generation_match=0, checksum="crc32c",
                retry=retry_policy(), timeout=TIMEOUT,
            )  # fmt: skip
        else:
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
    target = str(target).rstrip("/")
    if is_published(target):
        if read_text(join(target, PUBLISHED_MARKER)) != marker:
            raise PublishError(
                f"{target} is already published with different content; versions are never overwritten"
            )
        return False
    if not is_gcs(target) and Path(target).exists() and any(Path(target).iterdir()):
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
    if is_gcs(uri):
        bucket_name, prefix = _split_gcs(uri)
        bucket = _client().bucket(bucket_name)
        for relative in manifest:
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            _download(bucket.blob(f"{prefix}/{relative}"), f"{uri}/{relative}", target)
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
