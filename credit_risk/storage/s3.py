"""``s3://`` objects (AWS S3, or any S3-compatible endpoint such as MinIO) through boto3.

The same guarantees as the gs:// backend, built from what S3 offers:

- **Endpoint and credentials** only from the standard AWS chain: ``AWS_ENDPOINT_URL_S3`` /
  ``AWS_ENDPOINT_URL`` (MinIO, a test server; path-style addressing then, as MinIO needs),
  ``AWS_REGION``, and env / profile / web identity (IRSA on EKS) for the keys. Never parameters.
- **Retries**: botocore's ``standard`` mode (5xx, throttling, connection errors, with jittered
  exponential backoff), ``CREDIT_RISK_S3_MAX_ATTEMPTS`` attempts (default 8). botocore does not
  retry an error while a response *body* streams, so every read is a sequence of ranged GETs
  (``READ_CHUNK_BYTES``) and a chunk whose body breaks off is re-issued from where it stopped,
  pinned to the object's ETag (``If-Match``) so a concurrent overwrite cannot be spliced in.
- **Integrity**. Uploads send a CRC32 request checksum (botocore's default; AWS rejects a body
  that fails it) and store the file's sha256 as user metadata ``x-amz-meta-sha256``. After the
  upload the stored object's ETag must equal the local bytes' (MD5 for a single PUT, MD5 of the
  part MD5s for multipart) - a check the server computes from the bytes it received, so it holds
  on S3-compatible servers that ignore request checksums (moto's does: docs/storage.md); a
  mismatch deletes the object. Reads verify the sha256 metadata when present (everything this
  package writes), else a single-PUT ETag; SSE-KMS / SSE-C ETags are not MD5s and are skipped
  (the sha256 still holds). Published versions carry their own sha256 manifest on top.
- **Multipart** uploads at and above ``UPLOAD_CHUNK_BYTES`` (boto3's transfer manager), so a
  dropped connection resends one part, not the file.
- **Atomic publish**: the marker is written with ``If-None-Match: *`` (S3 conditional writes), so
  of two concurrent publishers exactly one wins.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import os
import random
import time
from pathlib import Path
from typing import IO, Any

from credit_risk.storage.base import READ_CHUNK_BYTES, ChecksumError, PublishError, sha256_file

log = logging.getLogger(__name__)

SCHEME = "s3://"
UPLOAD_CHUNK_BYTES = 8 * 1024 * 1024  # multipart threshold and part size (S3's minimum part: 5 MiB)
MAX_ATTEMPTS = int(os.environ.get("CREDIT_RISK_S3_MAX_ATTEMPTS", "8"))
STREAM_ATTEMPTS = 5  # re-issued ranged GETs for one chunk whose body broke off
CONNECT_TIMEOUT, READ_TIMEOUT = 10.0, 120.0
SHA256_METADATA = "sha256"  # x-amz-meta-sha256: the file's sha256, set by upload_file


def split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len(SCHEME) :].partition("/")
    if not bucket:
        raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
    return bucket, key


def endpoint() -> str | None:
    """The S3 endpoint override (MinIO, a test server), as the AWS SDKs read it."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def client() -> Any:  # botocore S3 client, imported lazily
    return _client(
        endpoint(), os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"), MAX_ATTEMPTS
    )


@functools.lru_cache(maxsize=8)
def _client(endpoint_url: str | None, region: str | None, attempts: int) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": attempts},
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


def _code(error: BaseException) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _error(uri: str, error: BaseException) -> BaseException:
    """A ClientError as the error a reader understands, naming the URI."""
    code = _code(error)
    bucket, _ = split(uri)
    if code == "NoSuchBucket":
        return FileNotFoundError(f"{uri}: bucket {bucket!r} does not exist (endpoint {endpoint() or 'AWS'})")
    if code in ("NoSuchKey", "404", "NotFound"):
        return FileNotFoundError(uri)
    if code in (
        "AccessDenied",
        "403",
        "Forbidden",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AllAccessDisabled",
    ):
        return PermissionError(
            f"{uri}: access denied ({code}); credentials come from the standard AWS chain "
            "(AWS_* env, a profile, or web identity / IRSA on EKS) - check that identity's policy"
        )
    return error


def _head(uri: str) -> dict[str, Any]:
    bucket, key = split(uri)
    try:
        return dict(client().head_object(Bucket=bucket, Key=key))
    except Exception as e:
        if _code(e) in ("404", "NotFound", "NoSuchKey"):
            try:  # HEAD has no body: tell a missing bucket from a missing object
                client().head_bucket(Bucket=bucket)
            except Exception as bucket_error:
                if _code(bucket_error) in ("404", "NoSuchBucket", "NotFound"):
                    raise FileNotFoundError(
                        f"{uri}: bucket {bucket!r} does not exist (endpoint {endpoint() or 'AWS'})"
                    ) from None
                raise _error(uri, bucket_error) from bucket_error
        raise _error(uri, e) from e


def exists(uri: str) -> bool:
    bucket, key = split(uri)
    try:
        client().head_object(Bucket=bucket, Key=key)
        return True
    except Exception as e:
        if _code(e) in ("404", "NotFound", "NoSuchKey"):
            return False
        raise _error(uri, e) from e


# --- integrity -----------------------------------------------------------------------------------


def expected_etag(path: Path, part_size: int) -> str:
    """The ETag S3 gives ``path`` uploaded as boto3 does: MD5 below ``part_size``, else the MD5 of
    the part MD5s followed by ``-<parts>``."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        if size < part_size:
            return hashlib.md5(f.read(), usedforsecurity=False).hexdigest()
        digests = [
            hashlib.md5(part, usedforsecurity=False).digest() for part in iter(lambda: f.read(part_size), b"")
        ]
    return f"{hashlib.md5(b''.join(digests), usedforsecurity=False).hexdigest()}-{len(digests)}"


def _etag_is_md5(head: dict[str, Any]) -> bool:
    encrypted = head.get("ServerSideEncryption") in ("aws:kms", "aws:kms:dsse") or head.get(
        "SSECustomerAlgorithm"
    )
    return not encrypted


class _Digests:
    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False)

    def update(self, data: bytes) -> None:
        self.sha256.update(data)
        self.md5.update(data)

    def verify(self, uri: str, head: dict[str, Any]) -> None:
        """Compare with the stored sha256 (our metadata) or, failing that, a single-PUT ETag."""
        stored = (head.get("Metadata") or {}).get(SHA256_METADATA)
        if stored:
            got = self.sha256.hexdigest()
            if got != stored:
                raise ChecksumError(
                    f"{uri}: read bytes fail the object's sha256 (got {got}, stored {stored}): "
                    "corrupted in transit or at rest"
                )
            return
        etag = str(head.get("ETag", "")).strip('"')
        if etag and "-" not in etag and _etag_is_md5(head):
            got = self.md5.hexdigest()
            if got != etag:
                raise ChecksumError(
                    f"{uri}: read bytes fail the object's MD5 ETag (got {got}, stored {etag}): "
                    "corrupted in transit or at rest"
                )
            return
        log.debug("%s: no sha256 metadata and a multipart/encrypted ETag: nothing to verify against", uri)


# --- reading ------------------------------------------------------------------------------------


@functools.cache
def _stream_errors() -> tuple[type[BaseException], ...]:
    """Errors raised while a response body streams, which botocore does not retry."""
    from botocore.exceptions import (
        ConnectionClosedError,
        EndpointConnectionError,
        IncompleteReadError,
        ReadTimeoutError,
        ResponseStreamingError,
    )
    from urllib3.exceptions import ProtocolError

    return (
        ResponseStreamingError, IncompleteReadError, ReadTimeoutError, ConnectionClosedError,
        EndpointConnectionError, ProtocolError, ConnectionError,
    )  # fmt: skip


class _RangedReader(io.RawIOBase):
    """A read of one S3 object as ranged GETs of ``READ_CHUNK_BYTES``, pinned to its ETag; a chunk
    whose body breaks off is re-issued (``STREAM_ATTEMPTS``, with backoff) from the byte where it
    stopped. A sequential read is verified when it reaches the end. Seekable (pyarrow reads a
    Parquet footer first; a CSV's size is its end): a seek away from the current position stops
    the whole-object check, as on gs://, and each later GET still fails on a changed ETag."""

    def __init__(self, uri: str, head: dict[str, Any]) -> None:
        self._uri, self._head = uri, head
        self._bucket, self._key = split(uri)
        self._size = int(head.get("ContentLength", 0))
        self._etag = str(head.get("ETag", ""))
        self._position = 0
        self._buffer = b""
        self._digests: _Digests | None = _Digests()
        self.reissued = 0  # ranged GETs sent again after a broken body (for tests and logs)
        if self._size == 0:
            self._finish()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position - len(self._buffer)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.tell(), io.SEEK_END: self._size}[whence]
        target = base + offset
        if target < 0:
            raise ValueError(f"{self._uri}: negative seek position {target}")
        if target != self.tell():
            self._digests = None  # out-of-order reads: the whole-object sum no longer applies
            self._buffer, self._position = b"", min(target, self._size)
        return target

    def _fetch(self) -> bytes:
        start = self._position
        end = min(self._size, start + READ_CHUNK_BYTES) - 1
        got = b""
        for attempt in range(STREAM_ATTEMPTS):
            try:
                response = client().get_object(
                    Bucket=self._bucket,
                    Key=self._key,
                    Range=f"bytes={start + len(got)}-{end}",
                    IfMatch=self._etag,
                )
                with response["Body"] as body:
                    got += body.read()
                break
            except _stream_errors() as e:
                if attempt == STREAM_ATTEMPTS - 1:
                    raise ConnectionError(
                        f"{self._uri}: bytes {start}-{end} broke off {STREAM_ATTEMPTS} times ({e})"
                    ) from e
                self.reissued += 1
                log.info(
                    "%s: body broke off at byte %d (%s); re-issuing the ranged GET",
                    self._uri,
                    start + len(got),
                    e,
                )
                time.sleep(min(8.0, 0.25 * 2**attempt) * random.uniform(0.5, 1.0))  # noqa: S311 - jitter
            except Exception as e:
                if _code(e) == "PreconditionFailed":
                    raise ChecksumError(
                        f"{self._uri}: changed while being read (ETag {self._etag} no longer holds)"
                    ) from e
                raise _error(self._uri, e) from e
        if len(got) != end - start + 1:
            raise ChecksumError(f"{self._uri}: asked for bytes {start}-{end}, got {len(got)} bytes")
        return got

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            parts = [self._buffer]
            self._buffer = b""
            while self._position < self._size:
                parts.append(self._next())
            return b"".join(parts)
        while len(self._buffer) < size and self._position < self._size:
            self._buffer += self._next()
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _next(self) -> bytes:
        data = self._fetch()
        self._position += len(data)
        if self._digests is not None:
            self._digests.update(data)
        if self._position >= self._size:
            self._finish()
        return data

    def _finish(self) -> None:
        if self._digests is not None:
            digests, self._digests = self._digests, None
            digests.verify(self._uri, self._head)


def open_read(uri: str) -> IO[bytes]:
    return _RangedReader(uri, _head(uri))  # type: ignore[return-value]


def read_bytes(uri: str) -> bytes:
    with _RangedReader(uri, _head(uri)) as reader:
        return reader.read()


def download(uri: str, target: Path) -> None:
    try:
        with _RangedReader(uri, _head(uri)) as reader, open(target, "wb") as f:
            for block in iter(lambda: reader.read(READ_CHUNK_BYTES), b""):
                f.write(block)
    except BaseException:
        target.unlink(missing_ok=True)
        raise


# --- writing ------------------------------------------------------------------------------------


def upload_file(local_path: Path, uri: str, content_type: str | None = None) -> None:
    """Upload one file (multipart at and above UPLOAD_CHUNK_BYTES) with its sha256 as metadata,
    then compare the stored ETag with the local bytes'; a mismatch deletes the object."""
    from boto3.s3.transfer import TransferConfig

    bucket, key = split(uri)
    path = Path(local_path)
    extra: dict[str, Any] = {"Metadata": {SHA256_METADATA: sha256_file(path)}, "ChecksumAlgorithm": "CRC32"}
    if content_type:
        extra["ContentType"] = content_type
    transfer = TransferConfig(
        multipart_threshold=UPLOAD_CHUNK_BYTES, multipart_chunksize=UPLOAD_CHUNK_BYTES, max_concurrency=4
    )
    try:
        client().upload_file(str(path), bucket, key, ExtraArgs=extra, Config=transfer)
    except Exception as e:
        cause = e.__cause__ or e.__context__ or e  # S3UploadFailedError wraps the ClientError
        raise _error(uri, cause if _code(cause) else e) from e
    head = _head(uri)
    stored = str(head.get("ETag", "")).strip('"')
    if _etag_is_md5(head):
        expected = expected_etag(path, UPLOAD_CHUNK_BYTES)
        if stored != expected:
            client().delete_object(Bucket=bucket, Key=key)
            raise ChecksumError(f"{uri}: stored ETag {stored} != local {expected}; upload discarded")


def list_prefix(uri: str) -> list[str]:
    bucket, prefix = split(uri)
    found: list[str] = []
    try:
        for page in client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            found.extend(f"{SCHEME}{bucket}/{item['Key']}" for item in page.get("Contents", []))
    except Exception as e:
        raise _error(uri, e) from e
    return found


def delete_prefix(uri: str) -> None:
    bucket, _ = split(uri)
    keys = [split(found)[1] for found in list_prefix(uri.rstrip("/") + "/")]
    for start in range(0, len(keys), 1000):  # DeleteObjects takes up to 1000 keys
        batch = [{"Key": k} for k in keys[start : start + 1000]]
        client().delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})


def create_only(uri: str, text: str) -> None:
    """``If-None-Match: *``: of two concurrent writers exactly one object wins."""
    bucket, key = split(uri)
    data = text.encode()
    try:
        client().put_object(
            Bucket=bucket, Key=key, Body=data, ContentType="application/json", IfNoneMatch="*",
            Metadata={SHA256_METADATA: hashlib.sha256(data).hexdigest()}, ChecksumAlgorithm="CRC32",
        )  # fmt: skip
    except Exception as e:
        if _code(e) in ("PreconditionFailed", "ConditionalRequestConflict"):
            if read_bytes(uri) == data:  # our own first attempt landed before its answer was lost
                return
            raise PublishError(
                f"{uri} was written by another publisher first; versions are never overwritten"
            ) from e
        raise _error(uri, e) from e
