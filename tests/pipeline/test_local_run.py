"""The whole pipeline on the real KFP local runner (subprocess per task), on the bundled data."""

import json
from pathlib import Path

import pytest
import yaml

from credit_risk import gate
from credit_risk.local_run import run_local
from tests.helpers import CREDIT_CSV, CREDIT_SPEC, GERMAN_CSV, GERMAN_SPEC, read_rows, write_rows

pytestmark = pytest.mark.slow


def test_german_credit_end_to_end_is_approved_and_deployable(tmp_path):
    s = run_local(str(GERMAN_CSV), str(GERMAN_SPEC), tmp_path)
    assert s.succeeded, s.error
    assert s.verdict == gate.APPROVED
    assert s.decision.metrics["auc"] >= 0.70 and s.decision.metrics["rows"] == 250
    for label in (
        "statistics",
        "schema",
        "anomalies",
        "stats_report",
        "train_data",
        "eval_data",
        "model",
        "approval",
        "evaluation_report",
        "model_card",
        "deployment",
        "inference_service",
    ):
        assert Path(s.artifacts[label]).exists(), label
    assert (Path(s.model_dir) / "saved_model.pb").exists()
    isvc = yaml.safe_load(Path(s.artifacts["inference_service"]).read_text())
    assert isvc["kind"] == "InferenceService"
    assert isvc["spec"]["predictor"]["containers"][0]["env"][0]["value"] == s.model_dir
    # KFP UI metrics are recorded in the evaluate task's executor output
    out = json.loads((Path(s.run_dir) / "evaluate" / "executor_output.json").read_text())
    assert out["artifacts"]["metrics"]["artifacts"][0]["metadata"]["auc"] == pytest.approx(
        s.decision.metrics["auc"], abs=1e-6
    )
    assert "confusionMatrix" in out["artifacts"]["classification_metrics"]["artifacts"][0]["metadata"]
    # german_credit fairness evidence: disparate impact for the protected attribute and age bands
    logged = out["artifacts"]["metrics"]["artifacts"][0]["metadata"]
    assert "disparate_impact_personal_status_and_sex" in logged and "disparate_impact_age_band" in logged
    report = Path(s.artifacts["evaluation_report"]).read_text()
    assert "personal_status_and_sex: disparate impact" in report and "age_band: disparate impact" in report


def test_credit_data_end_to_end(tmp_path):
    s = run_local(str(CREDIT_CSV), str(CREDIT_SPEC), tmp_path)
    assert s.succeeded, s.error
    assert s.verdict == gate.APPROVED, s.decision.reasons
    assert s.decision.metrics["auc"] >= 0.80


def test_unreachable_threshold_is_rejected_and_not_deployed(tmp_path):
    s = run_local(str(GERMAN_CSV), str(GERMAN_SPEC), tmp_path, gate_overrides={"min_auc": 0.999}, epochs=3)
    assert s.succeeded and s.verdict == gate.REJECTED
    assert "auc" in s.decision.reasons[0] and ">= 0.999" in s.decision.reasons[0]
    assert not s.deployment.deployed and "rejected" in s.deployment.reason
    assert "inference_service" not in s.artifacts


def test_broken_column_stops_at_validation_and_trains_nothing(tmp_path):
    header, rows = read_rows(GERMAN_CSV)
    rows[9][header.index("credit_amount")] = "n/a"
    bad = write_rows(tmp_path / "bad.csv", header, rows)
    s = run_local(str(bad), str(GERMAN_SPEC), tmp_path / "root")
    assert not s.succeeded and s.failed_task == "validate"
    assert {a["column"] for a in s.anomalies} == {"credit_amount"}
    assert any("row 10 (file line 11) value 'n/a'" in a["description"] for a in s.anomalies)
    assert not (Path(s.run_dir) / "train").exists() and "model" not in s.artifacts


def test_approved_model_is_rolled_out_through_the_kubernetes_api_by_the_pipeline(tmp_path, monkeypatch):
    """The compiled deploy component with apply_to_cluster: kubeconfig -> the real kubernetes client ->
    tests/kube_api_fake.py (a protocol-level fake API server; no cluster runs here)."""
    from tests.kube_api_fake import FakeKubeApi

    with FakeKubeApi() as fake:
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": fake.url}}],
            "users": [{"name": "runner", "user": {"token": "not-a-secret"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "runner"}}],
            "current-context": "fake",
        }
        (tmp_path / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))
        monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        s = run_local(
            str(GERMAN_CSV),
            str(GERMAN_SPEC),
            tmp_path / "root",
            apply_to_cluster=True,
            serving_root=str(tmp_path / "serving"),
        )
        calls = fake.api_calls()
    assert s.succeeded, s.error
    assert s.deployment.deployed and s.deployment.rollout["action"] == "created", s.deployment.reason
    created = next(body for verb, body in calls if verb == "create")
    assert created["metadata"]["namespace"] == "credit-risk"
    storage_uri = created["spec"]["predictor"]["containers"][0]["env"][0]["value"]
    assert storage_uri == s.deployment.storage_uri and storage_uri.startswith(str(tmp_path / "serving"))
    assert (Path(storage_uri) / "_PUBLISHED.json").exists()
    status = (Path(s.run_dir) / "deploy" / "status").read_text()
    assert "# Deployment: DEPLOYED" in status and "| credit-risk-predictor-00001 | 100 |" in status
