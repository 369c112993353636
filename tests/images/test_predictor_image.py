"""The predictor image, started exactly as the rendered InferenceService runs it: its args and env,
uid 10001, a read-only root filesystem with no writable volume (only the pod's own /dev/shm), every
capability dropped, no privilege escalation, and the model at /mnt/models laid out as KServe's
storage initializer leaves it (read-only). Real podman (runc) on this machine, the port published on
127.0.0.1 only. Run by bin/test's image stage after `credit-risk build-images`."""

import json
import shutil
import subprocess
import time

import pytest

from credit_risk.release import deploy, images
from tests.helpers import REPO, free_port, http
from tests.images.podman import REGISTRY, podman, require_image

pytestmark = pytest.mark.timeout(900)
M = "credit-risk"
RESULTS = REPO / "build" / "image-conformance.json"


@pytest.fixture(scope="module")
def image():
    return require_image(images.serving_image(REGISTRY))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """/mnt/models as the storage initializer lays it out: the published version's files, readable
    by the pod's user (uid 10001 is not their owner)."""
    out = tmp_path_factory.mktemp("fixture")
    subprocess.run([str(REPO / ".venvs" / "pipeline" / "bin" / "python"), "-m", "tests.make_serving_fixture",
                    str(out)], cwd=REPO, check=True, timeout=600)  # fmt: skip
    mnt = out / "mnt-models"
    shutil.copytree(out / "model", mnt)
    for path in [mnt, *mnt.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return mnt, json.loads((out / "expected.json").read_text())


def _pod_run_args(container: dict, pod: dict) -> list[str]:
    """podman flags for what the rendered InferenceService's pod and container say."""
    sc, psc = container["securityContext"], pod["securityContext"]
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
    assert sc["capabilities"]["drop"] == ["ALL"] and psc["seccompProfile"]["type"] == "RuntimeDefault"
    flags = ["--read-only", "--read-only-tmpfs=false", f"--user={sc['runAsUser']}", "--cap-drop=ALL",
             "--security-opt=no-new-privileges"]  # fmt: skip
    for env in container["env"]:
        flags.append(f"--env={env['name']}={env['value']}")
    limits = container["resources"]["limits"]
    flags.append(f"--memory={limits['memory'].replace('Gi', 'g').replace('Mi', 'm')}")
    return flags


def test_the_predictor_image_runs_as_the_inference_service_says(image, models, tmp_path):
    mnt, expected = models
    config = deploy.DeployConfig(name=M, serving_image=image)
    isvc = deploy.render_inference_service("gs://bucket/models/m-1", config, "m-1")
    pod = isvc["spec"]["predictor"]
    (container,) = pod["containers"]
    assert container["image"] == image
    label = podman("image", "inspect", "--format", '{{index .Config.Labels "io.credit-risk.content-hash"}}',
                   image).stdout.strip()  # fmt: skip
    assert label == images.content_hash(images.SERVING_IMAGE_NAME) and image.endswith(label[:12])
    user = podman("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip()
    size = int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())
    assert user == "10001"

    port = free_port()
    name = f"credit-risk-conformance-{port}"
    args = ["run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080", "-v", f"{mnt}:/mnt/models:ro",
            *_pod_run_args(container, pod), image, *container["args"]]  # fmt: skip
    started = time.monotonic()
    podman(*args)
    base = f"http://127.0.0.1:{port}"
    try:
        ready_s = _wait_ready(base, name, started)
        # V1 and V2 predict answer what the training side computed, reasons included
        body = json.dumps({"instances": expected["instances"][:5]}).encode()
        status, raw = http("POST", f"{base}/v1/models/{M}:predict", body)
        answers = json.loads(raw)["predictions"]
        assert status == 200 and all("reasons" in a for a in answers)
        assert [a["pd"] for a in answers] == pytest.approx(expected["pd_savedmodel"][:5], abs=1e-5)
        meta = json.loads(http("GET", f"{base}/v2/models/{M}")[1])
        first = expected["instances"][0]
        tensors = [{"name": i["name"], "datatype": i["datatype"], "shape": [1, 1], "data": [first[i["name"]]]}
                   for i in meta["inputs"] if first.get(i["name"]) is not None]  # fmt: skip
        v2 = {"inputs": tensors}
        status, raw = http("POST", f"{base}/v2/models/{M}/infer", json.dumps(v2).encode())
        assert status == 200
        assert json.loads(raw)["outputs"][0]["data"][0] == pytest.approx(
            expected["pd_savedmodel"][0], abs=1e-5
        )
        for path in ("/", "/v2/health/ready", f"/v2/models/{M}/ready"):
            assert http("GET", base + path)[0] == 200, path
        metrics = http("GET", f"{base}/metrics")[1].decode()
        assert 'credit_risk_requests_total{protocol="v1",status="200"}' in metrics
        assert http("POST", f"{base}/v2/repository/models/{M}/unload")[0] == 404

        # a killed worker comes back, and the server keeps answering meanwhile
        workers = _worker_pids(name)
        assert len(workers) == int(container["args"][container["args"].index("--workers") + 1])
        podman("exec", name, "python", "-c", f"import os, signal; os.kill({workers[0]}, signal.SIGKILL)")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(set(_worker_pids(name)) - {workers[0]}) < len(workers):
            time.sleep(1)
        assert len(set(_worker_pids(name)) - {workers[0]}) == len(workers), "the worker was not restarted"
        assert http("POST", f"{base}/v1/models/{M}:predict", body)[0] == 200

        # SIGTERM drains and the container exits within the pod's 30 s grace period
        stop_started = time.monotonic()
        podman("stop", "-t", "30", name, timeout=60)
        stop_s = time.monotonic() - stop_started
        assert stop_s < 30
        logs = podman("logs", name).stdout + podman("logs", name).stderr
        assert "draining" in logs and "No usable temporary directory" not in logs
    finally:
        podman("rm", "-f", name, check=False)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    measured = {"image": image, "user": user, "size_mb": round(size / 1e6),
                "start_to_ready_s": round(ready_s, 1), "sigterm_to_exit_s": round(stop_s, 1)}  # fmt: skip
    RESULTS.write_text(json.dumps(measured, indent=2) + "\n")
    print(
        f"\n{image}: {size / 1e6:,.0f} MB, user {user}, ready in {ready_s:.1f} s, stopped in {stop_s:.1f} s"
    )


def _wait_ready(base: str, name: str, started: float, timeout: float = 240) -> float:
    while time.monotonic() - started < timeout:
        state = podman("inspect", "--format", "{{.State.Status}}", name, check=False).stdout.strip()
        if state not in ("running", "created", "configured"):
            logs = podman("logs", name, check=False)
            raise AssertionError(f"container {state}:\n{(logs.stdout + logs.stderr)[-3000:]}")
        try:
            if http("GET", f"{base}/v1/models/{M}", timeout=2)[0] == 200:
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.5)
    logs = podman("logs", name, check=False)
    raise AssertionError(f"not ready after {timeout}s:\n{(logs.stdout + logs.stderr)[-3000:]}")


def _worker_pids(name: str) -> list[int]:
    """The supervisor's (PID 1's) children inside the container."""
    code = "print(open('/proc/1/task/1/children').read())"
    out = podman("exec", name, "python", "-c", code, check=False).stdout
    return [int(p) for p in out.split()]
