"""Container image names, derived from the package version in this one place.

Users push the images to their own registry and pass ``--registry`` to ``credit-risk compile``.
"""

from __future__ import annotations

import os

from credit_risk import __version__

DEFAULT_REGISTRY = os.environ.get("CREDIT_RISK_REGISTRY", "ghcr.io/credit-risk-kfp")
PIPELINE_IMAGE_NAME = "credit-risk-pipeline"
SERVING_IMAGE_NAME = "credit-risk-predictor"


def image(name: str, registry: str | None = None, tag: str | None = None) -> str:
    registry = (registry or DEFAULT_REGISTRY).rstrip("/")
    tag = tag or __version__
    if tag == "latest":
        raise ValueError("refusing the ':latest' tag: images must be pinned to a version")
    return f"{registry}/{name}:{tag}"


def pipeline_image(registry: str | None = None, tag: str | None = None) -> str:
    return image(PIPELINE_IMAGE_NAME, registry, tag)


def serving_image(registry: str | None = None, tag: str | None = None) -> str:
    return image(SERVING_IMAGE_NAME, registry, tag)
