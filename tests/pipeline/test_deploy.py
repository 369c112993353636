import json

import pytest
import yaml

from credit_risk import deploy, gate, images
from credit_risk.errors import ConfigError
from tests.helpers import KSERVE_CRD


@pytest.fixture(scope="module")
def isvc_schema():
    if not KSERVE_CRD.exists():
        pytest.skip(f"KServe CRD not found at {KSERVE_CRD} (set CREDIT_RISK_KSERVE_CRD)")
    crd = yaml.safe_load(KSERVE_CRD.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta1")
    return version["schema"]["openAPIV3Schema"]


def _approval(tmp_path, approved=True):
    metrics = {"auc": 0.8 if approved else 0.5, "ks": 0.4, "brier": 0.15, "ece": 0.02}
    decision = gate.decide(metrics, gate.GateConfig())
    path = tmp_path / "approval.json"
    path.write_text(decision.to_json())
    return path


def test_rendered_inference_service_validates_against_crd_schema(isvc_schema):
    import jsonschema

    manifest = deploy.render_inference_service(
        "gs://bucket/models/v1", deploy.DeployConfig(name="pd-model"), "v1"
    )
    jsonschema.validate(manifest, isvc_schema)
    container = manifest["spec"]["predictor"]["containers"][0]
    assert container["image"] == images.serving_image()
    assert {"name": "STORAGE_URI", "value": "gs://bucket/models/v1"} in container["env"]
    assert container["securityContext"]["runAsNonRoot"] is True


def test_crd_schema_catches_a_broken_manifest(isvc_schema):
    import jsonschema

    manifest = deploy.render_inference_service("gs://b/m", deploy.DeployConfig(name="pd-model"), "v1")
    manifest["spec"]["predictor"]["minReplicas"] = "one"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(manifest, isvc_schema)


def test_approved_model_gets_a_manifest(tmp_path):
    out = tmp_path / "isvc.yaml"
    record = deploy.deploy(_approval(tmp_path), "gs://b/model", deploy.DeployConfig(name="pd"), out)
    assert record.deployed and record.inference_service == str(out)
    assert yaml.safe_load(out.read_text())["kind"] == "InferenceService"


def test_rejected_model_is_never_rendered(tmp_path):
    out = tmp_path / "isvc.yaml"
    record = deploy.deploy(
        _approval(tmp_path, approved=False), "gs://b/model", deploy.DeployConfig(name="pd"), out
    )
    assert not record.deployed and not out.exists()
    assert record.reason.startswith("not deployed: model rejected") and "auc = 0.5000" in record.reason


@pytest.mark.parametrize("content", [None, "{not json", json.dumps({"decision": "approved"})[:-1]])
def test_missing_or_corrupt_approval_fails_closed(tmp_path, content):
    path = tmp_path / "approval.json"
    if content is not None:
        path.write_text(content)
    out = tmp_path / "isvc.yaml"
    record = deploy.deploy(path, "gs://b/model", deploy.DeployConfig(name="pd"), out)
    assert not record.deployed and not out.exists() and "fail closed" in record.reason


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "Bad_Name"}, "not a DNS-1123 label"),
        ({"name": "ok", "min_replicas": 3, "max_replicas": 1}, "replicas"),
        ({"name": "ok", "serving_image": "registry/predictor:latest"}, "pinned tag"),
        ({"name": "ok", "serving_image": "registry/predictor"}, "pinned tag"),
    ],
)
def test_bad_deploy_config(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        deploy.DeployConfig(**kwargs)


def test_images_derive_from_version_and_refuse_latest():
    from credit_risk import __version__

    assert images.pipeline_image("r.example/x") == f"r.example/x/credit-risk-pipeline:{__version__}"
    with pytest.raises(ValueError, match="latest"):
        images.serving_image(tag="latest")


def test_fail_on_rejection_fails_the_step_after_recording_why(tmp_path):
    from credit_risk import steps
    from credit_risk.errors import ModelRejectedError

    record = tmp_path / "record.json"
    with pytest.raises(ModelRejectedError, match="model rejected by the gate"):
        steps.deploy_step(
            str(_approval(tmp_path, approved=False)),
            "gs://b/m",
            deploy.DeployConfig(name="pd"),
            str(tmp_path / "isvc.yaml"),
            str(record),
            fail_on_rejection=True,
        )
    assert json.loads(record.read_text())["deployed"] is False
    assert not (tmp_path / "isvc.yaml").exists()
    ok = steps.deploy_step(
        str(_approval(tmp_path)),
        "gs://b/m",
        deploy.DeployConfig(name="pd"),
        str(tmp_path / "isvc.yaml"),
        str(record),
        fail_on_rejection=True,
    )
    assert ok.deployed
