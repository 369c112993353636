"""podman as the image tests run it (runc runtime: see docs/containers.md), and the check that an
image under test was built by the image stage."""

import os
import subprocess

# the registry bin/image-stage tags the built images with
REGISTRY = os.environ.get("CREDIT_RISK_IMAGE_REGISTRY", "localhost")


def podman(*args, check=True, timeout=120):
    return subprocess.run(["podman", "--runtime", "runc", *args], capture_output=True, text=True,
                          check=check, timeout=timeout)  # fmt: skip


def require_image(reference: str) -> str:
    found = podman("image", "exists", reference, check=False)
    assert found.returncode == 0, f"{reference} is not built: run credit-risk build-images (bin/test does)"
    return reference
