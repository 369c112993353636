"""Smoke-test a model before it gets traffic (TFX InfraValidator's idea).

``infra_validate`` starts our real predictor process (the serving environment: kserve + TF 2.21) on
127.0.0.1 with the exported model and sends the sample requests built from the model's own feature
spec and baseline applicant; a model that fails to load or answer is never deployed. ``http_smoke``
sends the same requests to a deployed URL (the canary) during a rollout.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from credit_risk.release.rollout import CLUSTER_DOMAIN, SmokeTestError
from credit_risk.spec import contract, feature_spec

log = logging.getLogger(__name__)

SERVING_PYTHON_ENV = "CREDIT_RISK_SERVING_PYTHON"  # the serving environment's interpreter
# Where cluster-local names (*.svc.cluster.local) are reached when this process cannot resolve
# them itself (a laptop through a port-forward of the cluster-local gateway, the tests' fake API
# server): the request goes to this base URL with the cluster-local name as its Host header, which
# is how Istio's cluster-local gateway routes it. Unset inside the cluster: DNS resolves them.
CLUSTER_GATEWAY_ENV = "CREDIT_RISK_CLUSTER_GATEWAY"
PD_TOLERANCE = 1e-4  # served vs infra-validated PD of the same instance (the same model: ~1e-7 apart)
_REPO = Path(__file__).resolve().parents[2]


def sample_requests(model_dir: str | Path) -> dict[str, Any]:
    """A V1 body from the exported model alone: the baseline applicant, the same applicant at each
    numeric input's upper bound, and with every nullable input missing."""
    spec = feature_spec.load(str(Path(model_dir) / contract.SPEC_FILE))
    info = json.loads((Path(model_dir) / contract.MODEL_INFO_FILE).read_text())
    baseline = info.get(contract.REASON_BASELINE_KEY)
    if not isinstance(baseline, dict):
        raise SmokeTestError(
            f"{model_dir}/{contract.MODEL_INFO_FILE} has no {contract.REASON_BASELINE_KEY!r}"
        )
    at_bounds = dict(baseline)
    for f in spec.model_features:
        if f.is_numeric and f.max is not None:
            at_bounds[f.name] = float(f.max)
    with_nulls = {k: (None if spec.feature(k).nullable else v) for k, v in baseline.items()}
    return {"instances": [baseline, at_bounds, with_nulls]}


def check_answer(status: int, body: bytes, expected_rows: int) -> list[float]:
    """A 200 with one finite PD in [0, 1] per instance (returned), or SmokeTestError saying what
    was wrong."""
    if status != 200:
        raise SmokeTestError(f"HTTP {status}: {body[:300].decode('utf-8', 'replace')}")
    try:
        predictions = json.loads(body)["predictions"]
    except (ValueError, KeyError, TypeError) as e:
        raise SmokeTestError(f"the answer is not a V1 predictions object: {body[:200]!r}") from e
    if not isinstance(predictions, list) or len(predictions) != expected_rows:
        raise SmokeTestError(f"expected {expected_rows} predictions, got {predictions!r:.200}")
    for i, p in enumerate(predictions):
        pd = p.get("pd") if isinstance(p, dict) else None
        if not isinstance(pd, int | float) or not math.isfinite(pd) or not 0.0 <= pd <= 1.0:
            raise SmokeTestError(f"prediction {i} has no PD in [0, 1]: {p!r:.200}")
    return [float(p["pd"]) for p in predictions]


def http_smoke(
    model_name: str,
    body: dict[str, Any],
    timeout: float = 30.0,
    expected_pds: list[float] | None = None,
    gateway: str | None = None,
) -> Callable[[str], list[float]]:
    """A smoke check for ``rollout``: POST ``body`` to ``<url>/v1/models/<name>:predict``; with
    ``expected_pds`` (what infra validation computed for the same instances) every served PD must
    match within ``PD_TOLERANCE``, so a revision serving another model fails. A cluster-local URL
    goes through ``gateway`` (default ``$CREDIT_RISK_CLUSTER_GATEWAY``) when one is set."""
    gateway = gateway if gateway is not None else os.environ.get(CLUSTER_GATEWAY_ENV, "")

    def smoke(base_url: str) -> list[float]:
        url = f"{base_url.rstrip('/')}/v1/models/{model_name}:predict"
        if not url.startswith(("http://", "https://")):
            raise SmokeTestError(f"refusing to smoke-query a non-HTTP URL: {url!r}")
        target, headers = url, {"Content-Type": "application/json"}
        host = urllib.parse.urlsplit(url).netloc
        if gateway and host.split(":")[0].endswith(f".{CLUSTER_DOMAIN}"):
            target = gateway.rstrip("/") + url.split(host, 1)[1]
            headers["Host"] = host
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            target, data=json.dumps(body).encode(), method="POST", headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - checked above
                status, payload = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, payload = e.code, e.read()
        except OSError as e:
            raise SmokeTestError(f"POST {url} failed: {e}") from e
        try:
            pds = check_answer(status, payload, len(body["instances"]))
        except SmokeTestError as e:
            raise SmokeTestError(f"POST {url}: {e}") from e
        for i, (served, expected) in enumerate(zip(pds, expected_pds or [], strict=False)):
            if abs(served - expected) > PD_TOLERANCE:
                raise SmokeTestError(
                    f"POST {url}: instance {i} scored PD {served:.6f}, but the approved model gives "
                    f"{expected:.6f} (infra validation): this revision serves another model"
                )
        log.info(
            "smoke query to %s passed (%d instances%s)",
            url,
            len(body["instances"]),
            ", PDs equal to infra validation's" if expected_pds else "",
        )
        return pds

    return smoke


def serving_python() -> str:
    """The serving environment's interpreter: $CREDIT_RISK_SERVING_PYTHON, else the repo's
    ``.venvs/serving``, else this interpreter if it has kserve."""
    configured = os.environ.get(SERVING_PYTHON_ENV)
    if configured:
        return configured
    venv = _REPO / ".venvs" / "serving" / "bin" / "python"
    if venv.exists():
        return str(venv)
    try:
        import kserve  # noqa: F401
    except ImportError:
        raise SmokeTestError(
            f"no serving environment to smoke-test the model in: set {SERVING_PYTHON_ENV} "
            "(the pipeline image sets it) or run bin/setup-envs serving"
        ) from None
    return sys.executable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def infra_validate(
    model_dir: str | Path, model_name: str = "credit-risk", timeout: float = 240.0, python: str | None = None
) -> dict[str, Any]:
    """Start the predictor on 127.0.0.1 with ``model_dir``, smoke-query it, stop it.

    Returns what was checked (for the deploy record); raises SmokeTestError with the server's last
    log lines when the model does not load or does not answer.
    """
    body = sample_requests(model_dir)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    start = time.monotonic()
    with tempfile.TemporaryFile("w+") as server_log:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
            [
                python or serving_python(),
                "-m",
                "credit_risk.serving",
                "--model_dir",
                str(model_dir),
                "--model_name",
                model_name,
                "--host",
                "127.0.0.1",
                "--http_port",
                str(port),
            ],
            stdout=server_log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        try:
            _wait_ready(f"{base}/v1/models/{model_name}", proc, start + timeout)
            pds = http_smoke(model_name, body, gateway="")(base)
        except SmokeTestError as e:
            server_log.seek(0)
            tail = "".join(server_log.readlines()[-15:])
            raise SmokeTestError(f"{e}\n--- predictor log (last lines) ---\n{tail}") from e
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    seconds = round(time.monotonic() - start, 2)
    log.info(
        "infra validation passed: the serving environment loaded %s and answered in %.1fs", model_dir, seconds
    )
    return {"instances": len(body["instances"]), "seconds": seconds, "pds": pds}


def _wait_ready(url: str, proc: subprocess.Popen[Any], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SmokeTestError(f"the predictor exited with code {proc.returncode} while loading the model")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - http://127.0.0.1 built here
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise SmokeTestError(f"the predictor did not become ready at {url} in time")
