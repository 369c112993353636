"""Container image names and tags, derived in this one place from what each image is built from.

A tag is ``<package version>-<content hash>``: the hash covers exactly the files its Dockerfile
COPYs into the image (plus the Dockerfile itself), so a change on main to any of them - component
code, the predictor, a lock - gives a new tag, and a compiled pipeline can never submit new
component code into an image built from old code. The image carries the same hash as the label
``io.credit-risk.content-hash`` and in ``CREDIT_RISK_IMAGE_HASH``, which is where a process inside
the image (no source tree there) reads it. Users push the images to their own registry and pass
``--registry`` to ``credit-risk compile`` and ``credit-risk build-images``.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import os
import re
from pathlib import Path

from credit_risk import __version__

DEFAULT_REGISTRY = os.environ.get("CREDIT_RISK_REGISTRY", "ghcr.io/credit-risk-kfp")
PIPELINE_IMAGE_NAME = "credit-risk-pipeline"
SERVING_IMAGE_NAME = "credit-risk-predictor"
DOCKERFILES = {
    PIPELINE_IMAGE_NAME: "docker/pipeline.Dockerfile",
    SERVING_IMAGE_NAME: "docker/serving.Dockerfile",
}
HASH_LABEL = "io.credit-risk.content-hash"
HASH_ENV = "CREDIT_RISK_IMAGE_HASH"  # set inside the images: {image name: hash}, as "name=hash,..."
SOURCE_ROOT = Path(__file__).resolve().parents[2]
_SKIP = re.compile(r"(__pycache__|\.pyc$|\.egg-info)")


def ignored(rel: str, patterns: list[str]) -> bool:
    """Whether ``.dockerignore`` keeps ``rel`` (a POSIX path in the build context) out of the build."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in patterns:
        pattern = raw.rstrip("/")
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatch(p, pattern[3:]) for p in parts):
                return True
        elif any(fnmatch.fnmatch(p, pattern) for p in prefixes):
            return True
    return False


def copied_sources(dockerfile: str) -> list[str]:
    """The repository paths a Dockerfile COPYs from the build context (not ``--from`` stages)."""
    sources = []
    for line in dockerfile.splitlines():
        words = line.split()
        if len(words) < 3 or words[0] != "COPY" or any(w.startswith("--from") for w in words):
            continue
        sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


def content_hash(name: str, root: Path = SOURCE_ROOT) -> str:
    """sha256 of an image's Dockerfile and every file it COPYs (path and bytes, sorted), less what
    ``.dockerignore`` keeps out of the build context (the compiled pipeline YAML among it: it holds
    the tag, so it cannot be part of what the tag is computed from)."""
    baked = dict(item.split("=", 1) for item in os.environ.get(HASH_ENV, "").split(",") if "=" in item)
    dockerfile = root / DOCKERFILES[name]
    if not dockerfile.is_file():
        if name in baked:
            return baked[name]
        raise FileNotFoundError(
            f"{dockerfile} not found: image tags are derived from the source tree; run from a checkout "
            "or pass an explicit tag"
        )
    return _hash_tree(str(root), DOCKERFILES[name])


@functools.cache
def _hash_tree(root_str: str, dockerfile_rel: str) -> str:
    root = Path(root_str)
    dockerfile = root / dockerfile_rel
    files = {dockerfile}
    for source in copied_sources(dockerfile.read_text()):
        path = root / source
        if not path.exists():
            raise FileNotFoundError(f"{dockerfile_rel} copies {source}, which is not in {root}")
        files |= {p for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file()}
    ignore_file = root / ".dockerignore"
    patterns = [ln.strip() for ln in ignore_file.read_text().splitlines()] if ignore_file.exists() else []
    patterns = [p for p in patterns if p and not p.startswith("#")]
    digest = hashlib.sha256()
    for path in sorted(files):
        rel = path.relative_to(root).as_posix()
        if _SKIP.search(rel) or ignored(rel, patterns):
            continue
        digest.update(rel.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def default_tag(name: str) -> str:
    return f"{__version__}-{content_hash(name)[:12]}"


def image(name: str, registry: str | None = None, tag: str | None = None) -> str:
    registry = (registry or DEFAULT_REGISTRY).rstrip("/")
    tag = tag or default_tag(name)
    if tag == "latest":
        raise ValueError("refusing the ':latest' tag: images must be pinned to a version")
    return f"{registry}/{name}:{tag}"


def pipeline_image(registry: str | None = None, tag: str | None = None) -> str:
    return image(PIPELINE_IMAGE_NAME, registry, tag)


def serving_image(registry: str | None = None, tag: str | None = None) -> str:
    return image(SERVING_IMAGE_NAME, registry, tag)


BASE_MANIFEST = SOURCE_ROOT / "manifests" / "base" / "inference-service.yaml"


def pin_base_manifest(path: Path = BASE_MANIFEST) -> Path:
    """Point the committed base InferenceService at the predictor image of this tree (the tag the
    deploy step renders; tests/pipeline/test_manifests_and_images.py keeps the two equal)."""
    text = path.read_text()
    pinned, count = re.subn(
        rf"(?m)^(\s+image: )\S*/{SERVING_IMAGE_NAME}:\S+$", rf"\g<1>{serving_image()}", text
    )
    if count != 1:
        raise ValueError(f"{path}: expected one {SERVING_IMAGE_NAME} image line, found {count}")
    path.write_text(pinned)
    return path
