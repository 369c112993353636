"""``credit-risk build-images --push`` against a real registry: Debian's ``docker-registry`` (the
CNCF distribution registry) on 127.0.0.1, plain HTTP. The build itself is answered from the layer
cache the image stage just filled; what is tested is the push, and that the digest recorded in the
build record is the one the registry serves - the digest a production overlay pins
(``image@sha256:...``)."""

import json
import os
import shutil
import subprocess
import time
import urllib.request

import pytest

from credit_risk.release import images
from tests.helpers import REPO, free_port, wait_http_ok

pytestmark = pytest.mark.timeout(900)
BASE_IMAGE = os.environ.get("CREDIT_RISK_BASE_IMAGE", "localhost/credit-risk-base:bookworm-py311")
MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.index.v1+json",
])  # fmt: skip


@pytest.fixture()
def registry(tmp_path):
    binary = shutil.which("docker-registry")
    assert binary, "docker-registry is not installed (bin/image-stage installs it)"
    port = free_port()
    config = tmp_path / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {tmp_path / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen(
        [binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{url}/v2/", proc, timeout=30)
    except (RuntimeError, TimeoutError):
        proc.kill()
        raise
    try:
        yield f"127.0.0.1:{port}", url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_push_records_the_digest_the_registry_serves(registry, tmp_path):
    host, url = registry
    record = tmp_path / "images.json"
    cmd = [str(REPO / ".venvs" / "pipeline" / "bin" / "credit-risk"), "build-images", "--builder", "buildah",
           "--images", "serving", "--base-image", BASE_IMAGE, "--registry", host, "--push",
           "--insecure-registry", "--record", str(record)]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True, timeout=800)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    seconds = time.monotonic() - started
    (built,) = json.loads(record.read_text())["images"]
    reference = images.serving_image(host)
    assert built["reference"] == reference and built["digest"].startswith("sha256:")
    repository, tag = reference.split("/", 1)[1].rsplit(":", 1)
    with urllib.request.urlopen(f"{url}/v2/{repository}/tags/list", timeout=10) as response:
        assert tag in json.loads(response.read())["tags"]
    request = urllib.request.Request(f"{url}/v2/{repository}/manifests/{built['digest']}",
                                     headers={"Accept": MANIFEST_TYPES}, method="HEAD")  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200 and response.headers["Docker-Content-Digest"] == built["digest"]
    # and the tag resolves to that same digest: what `image@sha256:...` pins is what was pushed
    request = urllib.request.Request(f"{url}/v2/{repository}/manifests/{tag}",
                                     headers={"Accept": MANIFEST_TYPES}, method="HEAD")  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Docker-Content-Digest"] == built["digest"]
    print(f"\nbuilt (from cache) and pushed {reference} in {seconds:.0f} s: {built['digest']}")
