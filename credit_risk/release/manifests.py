"""Kubernetes manifests as a scanner sees them.

KServe turns an InferenceService's predictor into a Deployment (via Knative or raw mode); manifest
scanners such as checkov do not know the InferenceService kind. ``predictor_workloads`` writes the
Deployment-equivalent of each predictor - same service account, containers, security context and
resources - so the scanner judges exactly what will run.

Usage: python -m credit_risk.release.manifests RENDERED.yaml > WORKLOADS.yaml
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

INFERENCE_SERVICE = "InferenceService"


def predictor_workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One apps/v1 Deployment per InferenceService predictor in ``docs``."""
    out = []
    for doc in docs:
        if not doc or doc.get("kind") != INFERENCE_SERVICE:
            continue
        meta, predictor = doc["metadata"], doc["spec"]["predictor"]
        # the label KServe puts on predictor pods (network policies select on it)
        labels = {"serving.kserve.io/inferenceservice": meta["name"]}
        pod_spec = {
            k: v
            for k, v in predictor.items()
            if k
            not in (
                "minReplicas",
                "maxReplicas",
                "scaleMetric",
                "scaleTarget",
                "canaryTrafficPercent",
                "logger",
            )
        }
        out.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": f"{meta['name']}-predictor",
                    "namespace": meta.get("namespace"),
                    "labels": labels,
                },
                "spec": {
                    "replicas": predictor.get("minReplicas", 1),
                    "selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": labels}, "spec": pod_spec},
                },
            }
        )
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    with open(argv[0]) as fh:
        docs = list(yaml.safe_load_all(fh))
    print(yaml.safe_dump_all(predictor_workloads(docs), sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
