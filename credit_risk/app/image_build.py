"""Build (and push) the two images with docker, podman or buildah: one entry point for users, CI,
GitHub Actions (``--builder docker``) and Jenkins.

Each image is tagged ``<registry>/<name>:<version>-<content hash>`` (credit_risk.release.images) and
labelled with the same hash; ``build/images.json`` records what was built - references, hashes,
builder, base image and, after ``--push``, the registry digest to pin in production
(``image@sha256:...``). On a machine with no Docker daemon (this project's CI) buildah builds with
``--isolation chroot`` and, where the host has a CA bundle, mounts it into the build for TLS to the
package index (a build-time mount: the image never keeps it).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from credit_risk.errors import ConfigError, ImageBuildError
from credit_risk.release import images

log = logging.getLogger(__name__)

BUILDERS = ("docker", "podman", "buildah")
DEFAULT_BASE_IMAGE = "python:3.11.7-slim-bookworm"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# where a buildah/podman build sees the host's uv cache (the Dockerfiles' UV_CACHE_DIR build arg)
BUILD_UV_CACHE = "/uv-cache"
# measured: the pipeline image is ~6 GB and its build needs about twice that; the predictor ~2.2 GB
NEEDED_GB = {images.PIPELINE_IMAGE_NAME: 14.0, images.SERVING_IMAGE_NAME: 6.0}
STORAGE_DIRS = {
    "docker": "/var/lib/docker",
    "podman": "/var/lib/containers",
    "buildah": "/var/lib/containers",
}
Runner = Callable[[list[str]], subprocess.CompletedProcess[str]]


@dataclasses.dataclass(frozen=True)
class BuiltImage:
    name: str
    reference: str
    content_hash: str
    dockerfile: str
    seconds: float
    digest: str | None = None


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    log.info("$ %s", " ".join(cmd))
    return subprocess.run(cmd, check=False, text=True, capture_output=False, stdout=None)  # noqa: S603


def host_uv_cache() -> Path:
    """The host's uv cache, as uv itself resolves it (UV_CACHE_DIR, XDG_CACHE_HOME, ~/.cache)."""
    if os.environ.get("UV_CACHE_DIR"):
        return Path(os.environ["UV_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "uv"


def build_command(
    builder: str,
    name: str,
    reference: str,
    root: Path,
    base_image: str,
    ca_bundle: Path | None = CA_BUNDLE,
    uv_cache: Path | None = None,
) -> list[str]:
    """The one command that builds image ``name`` as ``reference``.

    docker builds keep uv's downloads in a BuildKit cache mount (the Dockerfiles' own); buildah and
    podman builds mount ``uv_cache`` - the host's, which ``bin/setup-envs`` filled from the same
    locks - so a build on a machine that has the test environments downloads nothing again."""
    if builder not in BUILDERS:
        raise ConfigError(f"builder {builder!r} is not one of {BUILDERS}")
    dockerfile = str(root / images.DOCKERFILES[name])
    hashes = ",".join(f"{n}={images.content_hash(n, root)}" for n in images.DOCKERFILES)
    args = [
        "-f", dockerfile, "-t", reference,
        "--build-arg", f"BASE_IMAGE={base_image}",
        "--build-arg", f"IMAGE_CONTENT_HASH={images.content_hash(name, root)}",
        "--build-arg", f"IMAGE_HASHES={hashes}",
    ]  # fmt: skip
    if builder == "docker":
        return ["docker", "build", *args, str(root)]
    mounts = ["-v", f"{ca_bundle}:{ca_bundle}:ro"] if ca_bundle and ca_bundle.is_file() else []
    if uv_cache is not None:
        mounts += ["-v", f"{uv_cache}:{BUILD_UV_CACHE}", "--build-arg", f"UV_CACHE_DIR={BUILD_UV_CACHE}"]
    if builder == "podman":
        return ["podman", "build", "--isolation", "chroot", "--layers", *mounts, *args, str(root)]
    return ["buildah", "bud", "--isolation", "chroot", "--layers", *mounts, *args, str(root)]


def push_command(
    builder: str, reference: str, tls_verify: bool = True, digestfile: Path | None = None
) -> list[str]:
    """Push ``reference``; podman and buildah write the digest the registry stored to ``digestfile``
    (a push may recompress layers, so the local image's digest is not necessarily the pushed one)."""
    if builder == "docker":
        return ["docker", "push", reference]
    extra = [f"--digestfile={digestfile}"] if digestfile else []
    return [builder, "push", f"--tls-verify={'true' if tls_verify else 'false'}", *extra, reference]


def check_disk(
    builder: str, names: Sequence[str], usage: Callable[[str], object] = shutil.disk_usage
) -> None:
    """Refuse to start a build that cannot finish: the builder's storage needs room for it."""
    where = STORAGE_DIRS[builder]
    probe = where if Path(where).exists() else "/"
    free_gb = usage(probe).free / 1e9  # type: ignore[attr-defined]
    need = sum(NEEDED_GB[n] for n in names)
    if free_gb < need:
        raise ConfigError(
            f"not enough disk for {', '.join(names)}: {free_gb:.1f} GB free under {probe}, about "
            f"{need:.0f} GB needed (free space, or build one image at a time with --images)"
        )


def build_images(
    builder: str,
    registry: str | None = None,
    names: Sequence[str] = (images.PIPELINE_IMAGE_NAME, images.SERVING_IMAGE_NAME),
    base_image: str = DEFAULT_BASE_IMAGE,
    push: bool = False,
    tls_verify: bool = True,
    root: Path = images.SOURCE_ROOT,
    record: Path | None = None,
    run: Runner = _run,
) -> list[BuiltImage]:
    """Build (and push) ``names``; returns what was built and writes ``record`` (JSON)."""
    if shutil.which(builder) is None and run is _run:
        raise ConfigError(f"{builder} is not installed (see docs/containers.md)")
    check_disk(builder, names)
    built = []
    for name in names:
        reference = images.image(name, registry)
        start = time.monotonic()
        cache = None
        if builder != "docker":
            cache = host_uv_cache()
            cache.mkdir(parents=True, exist_ok=True)
        if run(build_command(builder, name, reference, root, base_image, uv_cache=cache)).returncode != 0:
            raise ImageBuildError(f"building {reference} failed (output above)")
        digest = None
        if push:
            with tempfile.TemporaryDirectory() as scratch:
                digestfile = Path(scratch) / "digest"
                if run(push_command(builder, reference, tls_verify, digestfile)).returncode != 0:
                    raise ImageBuildError(f"pushing {reference} failed (output above)")
                digest = _digest(builder, reference, run, digestfile)
        built.append(BuiltImage(name, reference, images.content_hash(name, root), images.DOCKERFILES[name],
                                round(time.monotonic() - start, 1), digest))  # fmt: skip
        log.info("built %s in %.0f s%s", reference, built[-1].seconds, f" ({digest})" if digest else "")
    if record:
        record.parent.mkdir(parents=True, exist_ok=True)
        doc = {"builder": builder, "base_image": base_image, "images": [dataclasses.asdict(b) for b in built]}
        record.write_text(json.dumps(doc, indent=2) + "\n")
    return built


def _digest(builder: str, reference: str, run: Runner, digestfile: Path) -> str | None:
    """The pushed manifest digest, to pin as ``reference@sha256:...`` (None if the builder hides it)."""
    if builder != "docker" and digestfile.is_file():
        return digestfile.read_text().strip() or None
    fmt = "{{index .RepoDigests 0}}" if builder == "docker" else "{{.Digest}}"
    cmd = [builder if builder != "buildah" else "podman", "image", "inspect", "--format", fmt, reference]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True) if run is _run else run(cmd)  # noqa: S603
    out = (proc.stdout or "").strip()
    return out.split("@", 1)[-1] if out else None
