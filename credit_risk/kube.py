"""How this package reaches a Kubernetes API server: one client factory for every caller (the
rollout, the champion lookup, the Spark Operator job).

The server is ``$CREDIT_RISK_KUBE_HOST`` when set (a port-forward, the tests' protocol fakes), else
the pod's in-cluster config, else ``~/.kube/config``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

KUBE_HOST_ENV = "CREDIT_RISK_KUBE_HOST"  # explicit Kubernetes API server URL (port-forward, tests)
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def api_client(host: str | None = None) -> Any:
    """A ``kubernetes`` ApiClient: ``host``, else ``$CREDIT_RISK_KUBE_HOST``, else in-cluster
    config inside a pod, else ``~/.kube/config``."""
    from kubernetes import client, config

    host = host or os.environ.get(KUBE_HOST_ENV) or None
    if host:
        configuration = client.Configuration()
        configuration.host = host
        return client.ApiClient(configuration)
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()
    else:
        config.load_kube_config()
    return client.ApiClient()


def pod_namespace(path: Path | None = None) -> str | None:
    """The namespace this pod runs in (its service account's), or None outside a pod."""
    try:
        return (path or SERVICE_ACCOUNT_NAMESPACE).read_text().strip() or None
    except OSError:
        return None
