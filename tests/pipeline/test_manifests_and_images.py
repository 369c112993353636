import re

import pytest
import yaml

from credit_risk.release.deploy import DeployConfig, render_inference_service
from tests.helpers import REPO, crd_schema

BASE_ISVC = REPO / "manifests" / "base" / "inference-service.yaml"


def test_base_inference_service_is_what_the_deploy_step_renders():
    base = yaml.safe_load(BASE_ISVC.read_text())
    rendered = render_inference_service(
        "gs://MODEL_BUCKET/credit-risk/models/VERSION", DeployConfig(name="credit-risk"), "VERSION"
    )
    del rendered["metadata"]["namespace"]
    assert base == rendered, (
        "manifests/base/inference-service.yaml drifted from credit_risk/release/deploy.py"
    )


def test_base_inference_service_validates_against_crd():
    import jsonschema

    jsonschema.validate(yaml.safe_load(BASE_ISVC.read_text()), crd_schema())


@pytest.mark.parametrize("side", ["pipeline", "serving"])
def test_dockerfile_builds_from_its_lock_pinned_and_non_root(side):
    text = (REPO / "docker" / f"{side}.Dockerfile").read_text()
    assert f"-r locks/{side}.txt" in text and "--require-hashes" in text
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.M).group(1)  # the public image users expect
    assert re.match(r"python:3\.11\.\d+-slim-\w+$", base), base
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["${BASE_IMAGE}", "${BASE_IMAGE}"]  # build, runtime
    runtime = text.split("\nFROM ${BASE_IMAGE}\n", 1)[1]
    # the runtime stage gets finished venvs only: no source tree that could shadow the package
    assert not re.search(r"^COPY (?!--from=build)", runtime, re.M), runtime
    assert re.search(r"^USER 10001$", runtime, re.M) and "ENV PATH=/opt/venv/bin:$PATH" in runtime
    assert re.search(r"HOME=/(dev/shm|home/credit-risk)\b", runtime)
    assert "io.credit-risk.content-hash" in runtime
    assert "pip install --no-cache-dir" in text and ":latest" not in text
    # no secrets baked in: no credential-like ENV/ARG, no key or credential files copied
    assert not re.search(r"^(ENV|ARG)\s+\S*(PASSWORD|TOKEN|SECRET|API_KEY|CREDENTIALS)", text, re.M | re.I)
    assert not re.search(r"^(COPY|ADD)\s.*(\.json|\.pem|\.key|credentials)", text, re.M | re.I)


KUBECTL = REPO / ".venvs" / "quality" / "bin" / "kubectl"


@pytest.mark.parametrize("overlay, replicas", [("dev", (1, 1)), ("prod", (2, 10)), ("standard", (2, 3))])
def test_overlays_render_and_validate_against_crd(overlay, replicas):
    import subprocess

    import jsonschema

    rendered = subprocess.run(
        [str(KUBECTL), "kustomize", str(REPO / "manifests" / "overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    docs = list(yaml.safe_load_all(rendered))
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == [
        "InferenceService",
        "NetworkPolicy",
        "Role",
        "RoleBinding",
        "ServiceAccount",  # the predictor's; the runner's lives in the profile namespace
    ]
    isvc = next(d for d in docs if d["kind"] == "InferenceService")
    predictor = isvc["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == replicas
    jsonschema.validate(isvc, crd_schema())
    # the network policy admits exactly the ports the deployment mode serves on
    mode = isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"]
    policy = next(d for d in docs if d["kind"] == "NetworkPolicy")
    ports = sorted(p["port"] for p in policy["spec"]["ingress"][0]["ports"])
    if mode == "Knative":  # queue-proxy (the only way in) and the autoscaler's metrics scrape
        assert ports == [8012, 9090] and predictor["scaleMetric"] == "concurrency"
    else:
        assert mode == "Standard" and ports == [8080]
        assert predictor["scaleMetric"] == "cpu" and "canaryTrafficPercent" not in predictor
        assert "serving.kserve.io/enable-tag-routing" not in isvc["metadata"]["annotations"]


def _render(overlay):
    import subprocess

    out = subprocess.run(
        [str(KUBECTL), "kustomize", str(REPO / "manifests" / "overlays" / overlay)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return {d["kind"]: d for d in yaml.safe_load_all(out)}


def test_aws_overlay_reads_the_model_from_s3_by_irsa_and_minio_overlay_by_kserve_s3_secret():
    """KServe's two S3 conventions: on EKS the predictor's service account carries an IAM role
    (IRSA; no key anywhere); for MinIO the account lists a Secret whose serving.kserve.io/s3-*
    annotations tell the storage initializer the endpoint - the keys are the operator's to add."""
    import jsonschema

    aws = _render("aws")
    isvc = aws["InferenceService"]
    jsonschema.validate(isvc, crd_schema())
    assert isvc["spec"]["predictor"]["containers"][0]["env"][0] == {
        "name": "STORAGE_URI", "value": "s3://MODEL_BUCKET/credit-risk/models/VERSION"
    }  # fmt: skip
    assert aws["ServiceAccount"]["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::ACCOUNT_ID:role/credit-risk-predictor"
    }  # no GKE Workload Identity left over
    assert "Secret" not in aws

    minio = _render("minio")
    jsonschema.validate(minio["InferenceService"], crd_schema())
    assert minio["InferenceService"]["spec"]["predictor"]["containers"][0]["env"][0]["value"].startswith(
        "s3://"
    )
    secret = minio["Secret"]
    assert minio["ServiceAccount"]["secrets"] == [{"name": secret["metadata"]["name"]}]
    assert secret["metadata"]["namespace"] == minio["InferenceService"]["metadata"]["namespace"]
    notes = secret["metadata"]["annotations"]
    assert notes["serving.kserve.io/s3-endpoint"] == "minio-service.kubeflow:9000"
    assert notes["serving.kserve.io/s3-usehttps"] == "0"
    assert "data" not in secret and "stringData" not in secret  # no credential in the repo


def test_the_pipeline_namespace_gets_the_runner_and_the_serving_namespace_binds_it():
    """Runs execute in the profile namespace: the runner account is created there, with only what
    Argo and KFP's launcher need, and the serving namespace's RoleBinding names it across namespaces."""
    import subprocess

    rendered = subprocess.run(
        [str(KUBECTL), "kustomize", str(REPO / "manifests" / "pipeline-namespace")],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    docs = {d["kind"]: d for d in yaml.safe_load_all(rendered)}
    runner = docs["ServiceAccount"]["metadata"]
    assert (
        runner["name"] == "credit-risk-pipeline-runner" and runner["namespace"] == "kubeflow-user-example-com"
    )
    assert {r["resources"][0] for r in docs["Role"]["rules"]} == {
        "workflowtaskresults",
        "pods",
        "configmaps",
        "secrets",
        "sparkapplications",
    }
    assert all(r.get("resourceNames") for r in docs["Role"]["rules"] if r["resources"] == ["secrets"])
    serving = subprocess.run(
        [str(KUBECTL), "kustomize", str(REPO / "manifests" / "overlays" / "prod")],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    binding = next(d for d in yaml.safe_load_all(serving) if d["kind"] == "RoleBinding")
    assert binding["metadata"]["namespace"] == "credit-risk"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "credit-risk-pipeline-runner", "namespace": runner["namespace"]}
    ]


def test_predictor_workload_equivalent_carries_the_pod_spec():
    from credit_risk.release.manifests import predictor_workloads

    isvc = render_inference_service("gs://b/m", DeployConfig(name="pd"), "v1")
    (workload,) = predictor_workloads([isvc, {"kind": "ServiceAccount", "metadata": {"name": "x"}}])
    pod = workload["spec"]["template"]["spec"]
    assert workload["kind"] == "Deployment" and workload["spec"]["replicas"] == 1
    assert (
        pod["serviceAccountName"] == "credit-risk-predictor" and pod["automountServiceAccountToken"] is False
    )
    assert pod["containers"] == isvc["spec"]["predictor"]["containers"]
    assert "minReplicas" not in pod
    assert workload["spec"]["template"]["metadata"]["labels"] == {"serving.kserve.io/inferenceservice": "pd"}
