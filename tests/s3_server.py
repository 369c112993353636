"""moto's S3 API server (``moto_server``, from its own environment .venvs/moto) on 127.0.0.1.

A real HTTP server speaking the S3 REST API, started as a process, as the GCS emulator is.
credit_risk.storage reaches it the way it reaches MinIO: ``AWS_ENDPOINT_URL_S3`` plus keys from
the standard AWS environment variables (moto accepts any). What moto does and does not check
(it ignores request checksums; it computes ETags from the bytes it received) is measured in
tests/pipeline/test_storage_s3.py and written up in docs/storage.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers import REPO, free_port, server_process

ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",  # never a developer's own profile or keys
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}


def binary() -> Path:
    path = Path(os.environ.get("CREDIT_RISK_MOTO_SERVER", REPO / ".venvs" / "moto" / "bin" / "moto_server"))
    if not path.exists():
        raise RuntimeError(f"{path} not found: run bin/setup-envs moto")
    return path


@contextmanager
def s3_server() -> Iterator[str]:
    """Run the server; yields its URL and sets AWS_ENDPOINT_URL_S3 (and test keys) while it runs."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [str(binary()), "-H", "127.0.0.1", "-p", str(port)]
    with server_process(cmd, f"{url}/moto-api/", {**ENV, "AWS_ENDPOINT_URL_S3": url}, "moto_server"):
        yield url
