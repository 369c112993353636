"""moto's S3 API server (``moto_server``, from its own environment .venvs/moto) on 127.0.0.1.

A real HTTP server speaking the S3 REST API, started as a process, as the GCS emulator is.
credit_risk.storage reaches it the way it reaches MinIO: ``AWS_ENDPOINT_URL_S3`` plus keys from
the standard AWS environment variables (moto accepts any). What moto does and does not check
(it ignores request checksums; it computes ETags from the bytes it received) is measured in
tests/pipeline/test_storage_s3.py and written up in docs/storage.md.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers import REPO, free_port

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
    proc = subprocess.Popen(
        [str(binary()), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    names = [*ENV, "AWS_ENDPOINT_URL_S3"]
    previous = {k: os.environ.get(k) for k in names}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start on {url}") from None
                time.sleep(0.1)
        os.environ.update(ENV)
        os.environ["AWS_ENDPOINT_URL_S3"] = url
        yield url
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
