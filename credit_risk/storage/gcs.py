"""``gs://`` objects through google-cloud-storage, with one policy for every call:

- retries with exponential backoff on 429/408/5xx, connection resets and timeouts
  (``retry_policy``), uploads included (safe: nothing reads a name before its publish marker);
- crc32c verified on every download (whole-object downloads by the library, streaming reads by
  ``_VerifiedReader`` at end of stream) and on every upload (the server's crc32c of the stored
  object must equal the local file's);
- uploads above 8 MiB (google-cloud-storage's multipart limit) are resumable in
  ``UPLOAD_CHUNK_BYTES`` chunks, so a dropped connection resends one chunk, not the file.

google-cloud-storage is imported lazily so local paths need no cloud libraries; tests run it
against fake-gcs-server on 127.0.0.1 behind a fault-injecting proxy (tests/pipeline/test_storage_gcs.py).
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import IO, Any

from credit_risk.storage.base import READ_CHUNK_BYTES, ChecksumError, PublishError

SCHEME = "gs://"
UPLOAD_CHUNK_BYTES = 8 * 1024 * 1024  # resumable chunk (a multiple of 256 KiB, GCS's rule)
TIMEOUT = (10.0, 120.0)  # (connect, read) seconds per HTTP request; a stalled request is retried
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
    import google_crc32c

    checksum = google_crc32c.Checksum()
    if isinstance(data_or_path, bytes):
        checksum.update(data_or_path)
    else:
        with open(data_or_path, "rb") as f:
            for block in iter(lambda: f.read(READ_CHUNK_BYTES), b""):
                checksum.update(block)
    return base64.b64encode(checksum.digest()).decode()


def split(uri: str) -> tuple[str, str]:
    bucket, _, blob = uri[len(SCHEME) :].partition("/")
    if not bucket:
        raise ValueError(f"not a gs://bucket/path URI: {uri!r}")
    return bucket, blob


def client() -> Any:  # google.cloud.storage.Client, imported lazily
    from google.cloud import storage as gcs

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return gcs.Client(
            project=os.environ.get("GCLOUD_PROJECT", "test"), credentials=AnonymousCredentials()
        )
    return gcs.Client()


def _blob(uri: str) -> Any:
    """The blob at ``uri`` with its metadata (size, crc32c); FileNotFoundError when absent."""
    from google.api_core.exceptions import NotFound

    bucket, name = split(uri)
    try:
        blob = client().bucket(bucket).get_blob(name, retry=retry_policy(), timeout=TIMEOUT)
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
    blob = _blob(uri)
    try:
        return bytes(blob.download_as_bytes(checksum="crc32c", retry=retry_policy(), timeout=TIMEOUT))
    except Exception as e:
        raise _download_error(uri, e) from e


def exists(uri: str) -> bool:
    try:
        _blob(uri)
        return True
    except FileNotFoundError:
        return False


def upload_file(local_path: Path, uri: str, content_type: str | None = None) -> None:
    """Upload one file with retries (resumable, chunked, above 8 MiB) and verify the stored
    object's crc32c against the local bytes; a mismatch deletes the object and raises."""
    bucket, name = split(uri)
    path = Path(local_path)
    blob = client().bucket(bucket).blob(name, chunk_size=UPLOAD_CHUNK_BYTES)
    blob.upload_from_filename(
        str(path), content_type=content_type, checksum="crc32c", retry=retry_policy(), timeout=TIMEOUT
    )
    expected = _crc32c_b64(path)
    if blob.crc32c != expected:  # the library sets blob.crc32c from the server's answer
        blob.delete(retry=retry_policy(), timeout=TIMEOUT)
        raise ChecksumError(f"{uri}: stored crc32c {blob.crc32c} != local {expected}; upload discarded")


def list_prefix(uri: str) -> list[str]:
    bucket, prefix = split(uri)
    return [f"{SCHEME}{bucket}/{b.name}" for b in client().list_blobs(bucket, prefix=prefix)]


def open_read(uri: str) -> IO[bytes]:
    """A GCS object read in chunks (never whole), its crc32c checked at end of stream."""
    blob = _blob(uri)
    reader = blob.open("rb", chunk_size=READ_CHUNK_BYTES, retry=retry_policy(), timeout=TIMEOUT)
    return _VerifiedReader(reader, uri, blob.crc32c, blob.size)  # type: ignore[return-value]


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


def download(uri: str, target: Path) -> None:
    """Download with retries and crc32c verification; a failed download leaves no file."""
    blob = _blob(uri)
    try:
        blob.download_to_filename(str(target), checksum="crc32c", retry=retry_policy(), timeout=TIMEOUT)
    except Exception as e:
        target.unlink(missing_ok=True)
        raise _download_error(uri, e) from e


def delete_prefix(uri: str) -> None:
    bucket_name, prefix = split(uri.rstrip("/"))
    bucket = client().bucket(bucket_name)
    for leftover in bucket.list_blobs(prefix=prefix + "/", retry=retry_policy(), timeout=TIMEOUT):
        leftover.delete(retry=retry_policy(), timeout=TIMEOUT)


def create_only(uri: str, text: str) -> None:
    """if_generation_match=0: of two concurrent writers only one object wins (and the
    precondition makes a retried upload idempotent)."""
    from google.api_core.exceptions import PreconditionFailed

    bucket_name, name = split(uri)
    try:
        client().bucket(bucket_name).blob(name).upload_from_string(
            text, content_type="application/json", if_generation_match=0, checksum="crc32c",
            retry=retry_policy(), timeout=TIMEOUT,
        )  # fmt: skip
    except PreconditionFailed as e:
        raise PublishError(
            f"{uri} was written by another publisher first; versions are never overwritten"
        ) from e
