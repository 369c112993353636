"""Compile the pipelines to the YAML the Kubeflow dashboard uploads, with the images baked in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from credit_risk.release import images

COMPILED_FILE = Path(__file__).with_name("training_pipeline.yaml")
MONITORING_COMPILED_FILE = Path(__file__).with_name("monitoring_pipeline.yaml")
PIPELINES = ("training", "monitoring")


def _pipeline(
    which: str, database_secret: str | None, step_resources: list[str] | None, s3: Any | None
) -> Any:
    from credit_risk.pipelines import policy

    policies = policy.parse_overrides(step_resources)
    if which == "training":
        from credit_risk.pipelines.training_pipeline import build_training_pipeline

        return build_training_pipeline(database_secret, policies, s3)
    if which == "monitoring":
        from credit_risk.pipelines.monitoring_pipeline import build_monitoring_pipeline

        return build_monitoring_pipeline(policies, s3)
    raise ValueError(f"unknown pipeline {which!r}; one of {PIPELINES}")


def compile_pipeline(
    output: str | Path = COMPILED_FILE,
    registry: str | None = None,
    tag: str | None = None,
    database_secret: str | None = None,
    which: str = "training",
    step_resources: list[str] | None = None,
    s3: Any | None = None,
) -> Path:
    """Compile pipeline ``which`` to ``output``; ``registry``/``tag`` replace the default image of
    every component and the default serving image (users push our images to their own
    registry); ``database_secret`` mounts that Kubernetes secret on the training pipeline's ingest
    step (PostgreSQL credentials); ``step_resources``: ``<step>.<key>=<value>`` overrides of
    ``policy.POLICIES`` (cpu, memory, cpu_limit, retries); ``s3``: a ``policy.S3Access`` for
    S3-compatible storage (MinIO) on every step."""
    from kfp import compiler

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(_pipeline(which, database_secret, step_resources, s3), str(output))
    docs = list(yaml.safe_load_all(output.read_text()))
    spec = docs[0]
    pipeline_image = images.pipeline_image(registry, tag)
    for executor in spec["deploymentSpec"]["executors"].values():
        if "container" in executor:
            executor["container"]["image"] = pipeline_image
    params = spec["root"]["inputDefinitions"]["parameters"]
    if "serving_image" in params:
        params["serving_image"]["defaultValue"] = images.serving_image(registry, tag)
    output.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return output
