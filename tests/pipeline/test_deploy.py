import json

import pytest
import yaml

from credit_risk import lineage, storage
from credit_risk.errors import ConfigError
from credit_risk.evidence import gate
from credit_risk.release import deploy, images
from credit_risk.spec import feature_spec
from tests.helpers import crd_schema


@pytest.fixture(scope="module")
def isvc_schema():
    return crd_schema()


FINGERPRINT = "sha256:0123456789abcdef"


def _approval(tmp_path, approved=True, fingerprint=FINGERPRINT):
    metrics = {"auc": 0.8 if approved else 0.5, "ks": 0.4, "brier": 0.15, "ece": 0.02}
    decision = gate.decide(metrics, gate.GateConfig())
    decision.model_fingerprint = fingerprint
    path = tmp_path / "approval.json"
    path.write_text(decision.to_json())
    return path


def checked(model_dir, name):
    """Stand-in for the real predictor process where the test is about the deploy policy; the real
    infra validation has its own tests below."""
    return {"instances": 3, "seconds": 0.0, "model_dir": str(model_dir)}


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


def test_approved_model_gets_a_versioned_labelled_manifest(tmp_path):
    out = tmp_path / "isvc.yaml"
    approval = _approval(tmp_path)
    record = deploy.deploy(
        approval, "/models/m", deploy.DeployConfig(name="pd"), out, "gs://b/model", checked
    )
    # apply=false: rendered, and the record says exactly that - nothing was applied
    assert record.state == deploy.RENDERED and not record.deployed and not record.failed
    assert record.inference_service == str(out) and "not applied" in record.reason
    assert "# Deployment: RENDERED, NOT APPLIED" in deploy.status_markdown(record)
    assert record.model_version == "m-0123456789abcdef"
    assert record.approval_id == deploy.approval_id(approval.read_text())
    assert record.infra_validation["model_dir"] == "/models/m"
    isvc = yaml.safe_load(out.read_text())
    assert isvc["metadata"]["labels"]["credit-risk/model-version"] == "m-0123456789abcdef"
    assert isvc["metadata"]["labels"]["credit-risk/approval-id"] == record.approval_id
    assert isvc["spec"]["predictor"]["containers"][0]["env"] == [
        {"name": "STORAGE_URI", "value": "gs://b/model"},
        {"name": "TMPDIR", "value": "/dev/shm"},  # the root filesystem is read-only
        {"name": "HOME", "value": "/dev/shm"},
    ]


def _never(*args):
    raise AssertionError("a rejected or unreadable approval must not reach infra validation")


def test_rejected_model_is_never_validated_published_rendered_or_applied(tmp_path):
    from tests.kube_api_fake import FakeKubeApi

    out = tmp_path / "isvc.yaml"
    with FakeKubeApi() as fake:
        config = deploy.DeployConfig(
            name="pd", apply=True, kube_host=fake.url, serving_root=str(tmp_path / "serving")
        )
        record = deploy.deploy(_approval(tmp_path, approved=False), "/m", config, out, "", _never)
        assert fake.requests == []  # not one call reached the API server
    assert not record.deployed and not record.failed and not out.exists()
    assert not (tmp_path / "serving").exists()
    assert record.reason.startswith("not deployed: model rejected") and "auc = 0.5000" in record.reason


@pytest.mark.parametrize("content", [None, "{not json", json.dumps({"decision": "approved"})[:-1]])
def test_missing_or_corrupt_approval_fails_closed(tmp_path, content):
    path = tmp_path / "approval.json"
    if content is not None:
        path.write_text(content)
    out = tmp_path / "isvc.yaml"
    record = deploy.deploy(path, "/m", deploy.DeployConfig(name="pd"), out, "gs://b/model", _never)
    assert not record.deployed and not out.exists() and "fail closed" in record.reason


def test_approval_without_a_model_fingerprint_is_not_deployed(tmp_path):
    out = tmp_path / "isvc.yaml"
    record = deploy.deploy(
        _approval(tmp_path, fingerprint=""), "/m", deploy.DeployConfig(name="pd"), out, "", _never
    )
    assert record.failed and not out.exists() and "no usable model fingerprint" in record.reason


def test_publish_is_versioned_immutable_and_idempotent(tmp_path):
    model = tmp_path / "model"
    (model / "variables").mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(b"graph")
    (model / "variables" / "w").write_bytes(b"weights")
    root = tmp_path / "serving"
    config = deploy.DeployConfig(name="pd", serving_root=str(root))
    first = deploy.deploy(_approval(tmp_path), str(model), config, tmp_path / "a.yaml", "", checked)
    version_dir = root / "pd" / "m-0123456789abcdef"
    assert first.state == deploy.RENDERED and first.storage_uri == str(version_dir)
    assert (version_dir / "variables" / "w").read_bytes() == b"weights"
    marker = json.loads((version_dir / storage.PUBLISHED_MARKER).read_text())
    assert set(marker["files"]) == {"saved_model.pb", "variables/w"}
    again = deploy.deploy(_approval(tmp_path), str(model), config, tmp_path / "b.yaml", "", checked)
    assert (
        again.state == deploy.RENDERED and again.storage_uri == first.storage_uri
    )  # same model, same version
    (model / "variables" / "w").write_bytes(b"other weights")  # same fingerprint claimed, new bytes
    clash = deploy.deploy(_approval(tmp_path), str(model), config, tmp_path / "c.yaml", "", checked)
    assert clash.failed and "never overwritten" in clash.reason and not (tmp_path / "c.yaml").exists()
    assert (version_dir / "variables" / "w").read_bytes() == b"weights"
    assert sorted(p.name for p in (root / "pd").iterdir()) == ["m-0123456789abcdef"]  # no partial left


def test_an_unpublished_leftover_is_refused_not_served(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(b"graph")
    target = tmp_path / "serving" / "v1"
    target.mkdir(parents=True)
    (target / "saved_model.pb").write_bytes(b"half")  # an interrupted copy, no marker
    with pytest.raises(storage.PublishError, match="never published"):
        storage.publish_dir(model, str(target))
    empty = tmp_path / "serving" / "v2"  # e.g. an output directory KFP created: holds nothing
    empty.mkdir()
    assert storage.publish_dir(model, str(empty)) is True and storage.is_published(str(empty))


def test_infra_validation_starts_the_real_predictor_and_queries_it(german_model_dir):
    from credit_risk.release.infra_validation import infra_validate, sample_requests

    body = sample_requests(german_model_dir)
    nullable = [
        f.name
        for f in feature_spec.load(str(german_model_dir / "feature_spec.yaml")).model_features
        if f.nullable
    ]
    assert len(body["instances"]) == 3 and all(body["instances"][2][n] is None for n in nullable)
    checked_ = infra_validate(german_model_dir, "credit-risk")
    assert checked_["instances"] == 3 and checked_["seconds"] > 0


def test_model_that_fails_to_load_is_never_deployed(german_model_dir, tmp_path):
    import shutil

    from credit_risk import steps
    from credit_risk.errors import DeployError

    broken = tmp_path / "broken"
    shutil.copytree(german_model_dir, broken)
    fingerprint = lineage.model_fingerprint(broken)
    (broken / "saved_model.pb").write_bytes(b"not a graph")
    out, record_path = tmp_path / "isvc.yaml", tmp_path / "record.json"
    with pytest.raises(DeployError, match="infra validation / publish failed: the predictor exited"):
        steps.deploy_step(
            str(_approval(tmp_path, fingerprint=fingerprint)),
            str(broken),
            deploy.DeployConfig(name="pd", serving_root=str(tmp_path / "serving")),
            str(out),
            str(record_path),
            status_path=str(tmp_path / "status.md"),
        )
    record = json.loads(record_path.read_text())
    assert record["failed"] and not record["deployed"] and "predictor log" in record["reason"]
    assert not out.exists() and not (tmp_path / "serving").exists()  # nothing published or rendered
    assert "# Deployment: FAILED" in (tmp_path / "status.md").read_text()


def test_approved_model_rolls_out_through_the_kubernetes_api(german_model_dir, tmp_path, monkeypatch):
    """The whole deploy step: real infra validation, publish, real kubernetes client -> the fake,
    whose revision answers the smoke query with the published model's own PDs."""

    from tests.kube_api_fake import FakeKubeApi

    approval = _approval(tmp_path, fingerprint=lineage.model_fingerprint(german_model_dir))
    with FakeKubeApi() as fake:
        monkeypatch.setenv("CREDIT_RISK_CLUSTER_GATEWAY", fake.url)
        config = deploy.DeployConfig(
            name="pd",
            apply=True,
            kube_host=fake.url,
            serving_root=str(tmp_path / "serving"),
            poll_seconds=0.05,
        )
        record = deploy.deploy(approval, str(german_model_dir), config, tmp_path / "isvc.yaml")
        created = next(body for verb, body in fake.api_calls() if verb == "create")
    assert record.deployed and record.rollout["action"] == "created", record.reason
    assert record.state == deploy.CREATED
    assert created["spec"]["predictor"]["containers"][0]["env"][0]["value"] == record.storage_uri
    assert record.storage_uri.startswith(str(tmp_path / "serving" / "pd" / "m-"))
    markdown = deploy.status_markdown(record)
    assert "# Deployment: DEPLOYED" in markdown and "| pd-predictor-00001 | 100 | latest |" in markdown
    assert record.traffic_to_new_model() == 100


def test_a_revision_serving_another_model_is_not_deployed(german_model_dir, tmp_path, monkeypatch):
    """The cluster serves a different model under the approved model's URI (a stale copy, a
    wrong bucket): its smoke answers differ from the infra-validated PDs, so it fails."""

    from tests.kube_api_fake import FakeKubeApi

    approval = _approval(tmp_path, fingerprint=lineage.model_fingerprint(german_model_dir))
    with FakeKubeApi() as fake:
        monkeypatch.setenv("CREDIT_RISK_CLUSTER_GATEWAY", fake.url)
        config = deploy.DeployConfig(name="pd", apply=True, kube_host=fake.url, poll_seconds=0.05)
        fake.serve_instead = {str(german_model_dir): "gs://nowhere/stale"}  # answers a fixed PD of 0.25
        record = deploy.deploy(approval, str(german_model_dir), config, tmp_path / "isvc.yaml")
    assert not record.deployed and record.state == deploy.FAILED
    assert "this revision serves another model" in record.reason and "PD 0.250000" in record.reason


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


def test_images_derive_from_version_and_content_and_refuse_latest():
    from credit_risk import __version__

    digest = images.content_hash(images.PIPELINE_IMAGE_NAME)[:12]
    assert images.pipeline_image("r.example/x") == f"r.example/x/credit-risk-pipeline:{__version__}-{digest}"
    with pytest.raises(ValueError, match="latest"):
        images.serving_image(tag="latest")


def test_fail_on_rejection_fails_the_step_after_recording_why(tmp_path):
    from credit_risk import steps
    from credit_risk.errors import ModelRejectedError

    record = tmp_path / "record.json"
    with pytest.raises(ModelRejectedError, match="model rejected by the gate"):
        steps.deploy_step(
            str(_approval(tmp_path, approved=False)),
            "/m",
            deploy.DeployConfig(name="pd"),
            str(tmp_path / "isvc.yaml"),
            str(record),
            fail_on_rejection=True,
        )
    assert json.loads(record.read_text())["deployed"] is False
    assert json.loads(record.read_text())["state"] == deploy.REFUSED
    assert not (tmp_path / "isvc.yaml").exists()
    assert json.loads(record.read_text())["failed"] is False  # a rejection is not a failure


def test_approved_model_is_published_to_gcs_and_served_from_there(gcs, tmp_path):
    client, bucket = gcs
    model = tmp_path / "model"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(b"graph")
    config = deploy.DeployConfig(name="pd", serving_root=f"gs://{bucket}/serving")
    record = deploy.deploy(_approval(tmp_path), str(model), config, tmp_path / "isvc.yaml", "", checked)
    assert (
        record.state == deploy.RENDERED
        and record.storage_uri == f"gs://{bucket}/serving/pd/m-0123456789abcdef"
    )
    isvc = yaml.safe_load((tmp_path / "isvc.yaml").read_text())
    assert isvc["spec"]["predictor"]["containers"][0]["env"][0]["value"] == record.storage_uri
    assert client.bucket(bucket).blob("serving/pd/m-0123456789abcdef/_PUBLISHED.json").exists()


def test_deployment_mode_is_explicit_in_the_manifest():
    knative = deploy.render_inference_service("gs://b/m", deploy.DeployConfig(name="pd"), "v1")
    annotations = knative["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] == "Knative"
    assert annotations["serving.kserve.io/enable-tag-routing"] == "true"
    standard = deploy.render_inference_service(
        "gs://b/m",
        deploy.DeployConfig(name="pd", deployment_mode="Standard", scale_metric="cpu", scale_target=70),
        "v1",
    )
    assert standard["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    assert "serving.kserve.io/enable-tag-routing" not in standard["metadata"]["annotations"]
    assert standard["spec"]["predictor"]["scaleMetric"] == "cpu"
    with pytest.raises(ConfigError, match="Knative autoscaler metric"):
        deploy.DeployConfig(name="pd", deployment_mode="Standard")
    with pytest.raises(ConfigError, match="deployment_mode must be one of"):
        deploy.DeployConfig(name="pd", deployment_mode="Serverless")


def test_a_minio_artifact_uri_is_refused_as_storage_uri_naming_the_fix(german_model_dir, tmp_path):
    """On a stock Kubeflow the model artifact is minio://...: KServe's storage initializer cannot
    read it, so without serving_root deploy fails clearly instead of rendering a dead service."""

    approval = _approval(tmp_path, fingerprint=lineage.model_fingerprint(german_model_dir))
    ok = {"instances": 3, "seconds": 0.1, "pds": [0.1, 0.2, 0.3]}
    record = deploy.deploy(
        approval, str(german_model_dir), deploy.DeployConfig(name="pd"), tmp_path / "isvc.yaml",
        "minio://mlpipeline/v2/artifacts/run/train/model", lambda *a: ok,
    )  # fmt: skip
    assert record.state == deploy.FAILED and not (tmp_path / "isvc.yaml").exists()
    assert "minio://mlpipeline" in record.reason and "set serving_root to a gs:// or s3://" in record.reason
