"""Shared test helpers (importable from both environments: stdlib + numpy only)."""

from __future__ import annotations

import csv
import functools
import hashlib
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"
VENVS = REPO / ".venvs"
GERMAN_SPEC = DATA / "german_credit.spec.yaml"
CREDIT_SPEC = DATA / "credit_data.spec.yaml"
GERMAN_CSV = DATA / "german_credit.csv"
# the tests that read the pipeline suite's one shared default german_credit run (the german_run
# fixture) share an xdist group, so `pytest -n` keeps them on one worker and runs it once
GERMAN_RUN_GROUP = "german_run"
CREDIT_CSV = DATA / "credit_data.csv"
THIRD_PARTY = REPO / "third_party"  # vendored upstream material, each with LICENSE + PROVENANCE.md
KSERVE_CRD = THIRD_PARTY / "kserve" / "serving.kserve.io_inferenceservices.yaml"
SPARK_CRD = THIRD_PARTY / "spark-operator" / "sparkoperator.k8s.io_sparkapplications.yaml"


@functools.cache
@functools.lru_cache(maxsize=4)
def crd_schema(path: Path = KSERVE_CRD, version: str = "v1beta1") -> dict:
    """The OpenAPI v3 schema of ``version`` in a vendored CRD (parsed once per process: the KServe
    CRD is 40k lines; treat the result as read-only). A missing file is an error, never a skip:
    the repository carries every fixture its tests need."""
    import yaml  # in both environments (kserve and kfp depend on PyYAML)

    if not path.is_file():
        raise FileNotFoundError(f"vendored CRD missing: {path} (see third_party/README.md)")
    crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return next(v for v in crd["spec"]["versions"] if v["name"] == version)["schema"]["openAPIV3Schema"]


def read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def write_rows(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    return path


# --- edits of a CSV's (header, rows), for building bad datasets ----------------------------------
def drop_column(name: str):
    def edit(header: list[str], rows: list[list[str]]):
        i = header.index(name)
        return header[:i] + header[i + 1 :], [r[:i] + r[i + 1 :] for r in rows]

    return edit


def set_cell(row: int, name: str, value: str):
    def edit(header: list[str], rows: list[list[str]]):
        rows[row][header.index(name)] = value
        return header, rows

    return edit


def set_column(name: str, value: str):
    def edit(header: list[str], rows: list[list[str]]):
        for r in rows:
            r[header.index(name)] = value
        return header, rows

    return edit


def edited_copy(source: Path, target: Path, edit) -> str:
    """``source`` CSV with ``edit(header, rows)`` applied, written to ``target``."""
    header, rows = read_rows(source)
    header, rows = edit(header, [list(r) for r in rows])
    return str(write_rows(target, header, rows))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: bytes | None = None, timeout: float = 30) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_http_ok(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with code {proc.returncode}")
        try:
            if http("GET", url, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout}s")


def local_run_key() -> str:
    """What a recorded local run on german_credit was computed from: the pipeline image's content
    hash (all code and locks) and the bundled data. The image stage compares its containerized run
    with the pipeline suite's local run only when the keys match."""
    from credit_risk.release import images

    digest = hashlib.sha256(images.content_hash(images.PIPELINE_IMAGE_NAME).encode())
    for path in (GERMAN_CSV, GERMAN_SPEC):
        digest.update(path.read_bytes())
    return digest.hexdigest()


@contextmanager
def server_process(cmd: list[str], ready_url: str, env: dict[str, str], name: str) -> Iterator[None]:
    """Run an emulator process until ``ready_url`` answers (60 s at most), set ``env`` in this
    process while it runs, then restore the environment and stop the process."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    previous = {k: os.environ.get(k) for k in env}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(ready_url, timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start ({ready_url})") from None
                time.sleep(0.1)
        os.environ.update(env)
        yield
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
