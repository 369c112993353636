"""The whole pipeline on the real KFP local runner (subprocess per task), on the bundled data."""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from credit_risk.app.local_run import run_local, summarize_run
from credit_risk.errors import ConfigError
from credit_risk.evidence import gate
from tests.helpers import (
    CREDIT_CSV,
    CREDIT_SPEC,
    GERMAN_CSV,
    GERMAN_RUN_GROUP,
    GERMAN_SPEC,
    REPO,
    local_run_key,
    read_rows,
    write_rows,
)

pytestmark = pytest.mark.slow
LOCAL_REFERENCE = REPO / "build" / "local-run-german.json"


@pytest.mark.xdist_group(GERMAN_RUN_GROUP)  # one worker under -n: they share the run
def test_german_credit_end_to_end_is_approved_and_deployable(german_run):
    s = german_run
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
    # a finished run reads back to the same summary (the notebook's RUN_DIR); a wrong dir is named
    again = summarize_run(s.run_dir)
    assert again.verdict == s.verdict and again.decision.metrics == s.decision.metrics
    assert again.artifacts == s.artifacts and again.deployment == s.deployment
    with pytest.raises(ConfigError, match=r"not a finished training run: expected .*evaluate/approval"):
        summarize_run(Path(s.run_dir) / "train")
    # the image stage runs the same pipeline in the pipeline image and compares with this decision
    LOCAL_REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    reference = {"key": local_run_key(), "verdict": s.verdict, "metrics": s.decision.metrics}
    LOCAL_REFERENCE.write_text(json.dumps(reference, indent=2, allow_nan=True) + "\n")


def test_credit_data_end_to_end_ingested_from_postgresql(tmp_path, postgres, monkeypatch):
    """Training data from a real PostgreSQL server: credentials only in the environment (as the
    database secret sets them on Kubeflow), never in the pipeline parameters."""
    for key, value in postgres.env().items():
        monkeypatch.setenv(key, value)
    query = "SELECT * FROM credit_data WHERE id >= :first_id ORDER BY id"
    s = run_local(
        "", str(CREDIT_SPEC), tmp_path, sql_query=query, sql_params={"first_id": 1}, ensemble_size=1
    )
    assert s.succeeded, s.error
    assert s.verdict == gate.APPROVED, s.decision.reasons
    assert s.decision.metrics["auc"] >= 0.80
    out = json.loads((Path(s.run_dir) / "ingest" / "executor_output.json").read_text())
    meta = out["artifacts"]["snapshot"]["artifacts"][0]["metadata"]
    assert meta["source"] == "postgres" and meta["rows"] == len(read_rows(CREDIT_CSV)[1])
    assert meta["dropped_columns"] == ["id"]
    assert postgres.password not in json.dumps(out)


def test_unreachable_threshold_is_rejected_and_not_deployed(tmp_path):
    """Also the streamed data path: split and training read the snapshot in bounded chunks."""
    s = run_local(
        str(GERMAN_CSV),
        str(GERMAN_SPEC),
        tmp_path,
        gate_overrides={"min_auc": 0.999},
        epochs=3,
        ensemble_size=1,  # the rejection and the streamed path need one member, not three
        stream_training_data=True,
    )
    assert s.succeeded and s.verdict == gate.REJECTED
    assert "auc" in s.decision.reasons[0] and ">= 0.999" in s.decision.reasons[0]
    assert not s.deployment.deployed and "rejected" in s.deployment.reason
    assert "inference_service" not in s.artifacts
    train, held = (pd.read_parquet(s.artifacts[k]) for k in ("train_data", "eval_data"))
    assert len(train) + len(held) == 1000 and 200 <= len(held) <= 300  # 25 % by a seeded hash
    assert s.decision.metrics["rows"] == len(held)


def test_a_value_of_the_wrong_type_stops_at_ingest_and_trains_nothing(tmp_path):
    header, rows = read_rows(GERMAN_CSV)
    rows[9][header.index("credit_amount")] = "n/a"
    bad = write_rows(tmp_path / "bad.csv", header, rows)
    s = run_local(str(bad), str(GERMAN_SPEC), tmp_path / "root")
    assert not s.succeeded and s.failed_task == "ingest"
    assert (
        "DataError: " in s.error
        and "bad.csv: column 'credit_amount' row 10 (file line 11) value 'n/a' is not a number" in s.error
    )
    assert "snapshot" not in s.artifacts  # nothing published
    assert not (Path(s.run_dir) / "validate").exists() and "model" not in s.artifacts


def test_out_of_range_values_stop_at_validation_and_train_nothing(tmp_path):
    header, rows = read_rows(GERMAN_CSV)
    rows[9][header.index("age_in_years")] = "7"
    bad = write_rows(tmp_path / "bad.csv", header, rows)
    s = run_local(str(bad), str(GERMAN_SPEC), tmp_path / "root")
    assert not s.succeeded and s.failed_task == "validate"
    assert "age_in_years" in {a["column"] for a in s.anomalies}
    assert any("row 10" in a["description"] and "7" in a["description"] for a in s.anomalies), s.anomalies
    assert not (Path(s.run_dir) / "train").exists() and "model" not in s.artifacts


def test_pipeline_on_gcs_rolls_out_through_the_kubernetes_api(tmp_path, monkeypatch, gcs):
    """Data, feature spec, curated schema and the published model version all on the GCS emulator
    (gs:// URIs only; the pipeline root stays local because kfp 2.13's local runner only writes
    local paths), and the approved model rolled out by the compiled deploy component with
    apply_to_cluster: kubeconfig -> the real kubernetes client -> tests/kube_api_fake.py (a
    protocol-level fake API server; no cluster runs here)."""
    client, bucket = gcs
    _rolls_out_from_an_object_store(
        tmp_path,
        monkeypatch,
        f"gs://{bucket}",
        lambda local, name: client.bucket(bucket).blob(name).upload_from_filename(str(local)),
    )


def test_pipeline_on_s3_rolls_out_through_the_kubernetes_api(tmp_path, monkeypatch, s3):
    """The AWS twin: the same run with every URI on s3:// (moto's S3 server on 127.0.0.1, reached
    like MinIO through AWS_ENDPOINT_URL_S3); KServe's storage initializer is played by the fake,
    which loads the published s3:// version to answer the smoke queries."""
    client, bucket = s3
    _rolls_out_from_an_object_store(
        tmp_path,
        monkeypatch,
        f"s3://{bucket}",
        lambda local, name: client.upload_file(str(local), bucket, name),
    )


def _rolls_out_from_an_object_store(tmp_path, monkeypatch, root, put):
    from credit_risk import storage
    from tests.kube_api_fake import FakeKubeApi

    schema = GERMAN_SPEC.with_name("german_credit.schema.pbtxt")
    for local, name in (
        (GERMAN_CSV, "data/german_credit.csv"),
        (GERMAN_SPEC, "specs/german_credit.spec.yaml"),
        (schema, "specs/german_credit.schema.pbtxt"),
    ):
        put(local, name)

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
        # cluster-local names (the smoke queries) reach the fake as through the cluster-local gateway
        monkeypatch.setenv("CREDIT_RISK_CLUSTER_GATEWAY", fake.url)
        s = run_local(
            f"{root}/data/german_credit.csv",
            f"{root}/specs/german_credit.spec.yaml",
            tmp_path / "root",
            schema_uri=f"{root}/specs/german_credit.schema.pbtxt",
            apply_to_cluster=True,
            serving_root=f"{root}/serving",
            ensemble_size=1,
            champion_model_uri="isvc://credit-risk/credit-risk",
        )
        calls = fake.api_calls()
        smoked = fake.smoke_queries()
    assert s.succeeded, s.error
    # the smoke query reached the new revision's cluster-local address and got the served model's
    # own PDs (the fake loads the published version), equal to the infra-validated ones
    assert smoked == ["latest-credit-risk-predictor.credit-risk.svc.cluster.local"]
    assert len(s.deployment.infra_validation["pds"]) == 3
    # evaluate looked for the serving champion (none yet: a first model), then deploy created it
    assert [verb for verb, _ in calls][:3] == ["get", "get", "create"]
    assert s.decision.champion is None
    assert s.deployment.deployed and s.deployment.rollout["action"] == "created", s.deployment.reason
    created = next(body for verb, body in calls if verb == "create")
    assert created["metadata"]["namespace"] == "credit-risk"
    storage_uri = created["spec"]["predictor"]["containers"][0]["env"][0]["value"]
    assert storage_uri == s.deployment.storage_uri and storage_uri.startswith(f"{root}/serving/")
    assert storage.is_published(storage_uri)  # the version the InferenceService points at is complete
    status = (Path(s.run_dir) / "deploy" / "status").read_text()
    assert "# Deployment: DEPLOYED" in status and "| credit-risk-predictor-00001 | 100 |" in status
