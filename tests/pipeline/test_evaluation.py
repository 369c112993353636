"""Evaluation end to end on a real (small) model: evidence, champion-challenger, override, reports."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from credit_risk import kube, steps
from credit_risk.dataset import data
from credit_risk.evidence import gate
from credit_risk.modeling import training
from tests.helpers import GERMAN_CSV, GERMAN_SPEC

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, german_spec):
    root = tmp_path_factory.mktemp("eval")
    frame = data.load_dataset(str(GERMAN_CSV), german_spec)
    train, held_out = data.split_train_eval(frame, german_spec, 0.25, seed=42)
    training.train_and_export(train, german_spec, training.TrainingConfig(epochs=8), root / "model")
    held_out.to_csv(root / "eval.csv", index=False)
    return root


def _run(setup, name, **kw):
    out = setup / name
    out.mkdir()
    result = steps.evaluate_step(
        str(setup / "model"),
        str(setup / "eval.csv"),
        str(GERMAN_SPEC),
        kw.pop("config", gate.GateConfig()),
        str(out / "approval.json"),
        str(out / "card.md"),
        str(out / "report.html"),
        **kw,
    )
    return result, out


@pytest.mark.slow
def test_evidence_record_and_reports(setup):
    _, out = _run(setup, "plain")
    record = json.loads((out / "approval.json").read_text())
    assert record["decision"] in (gate.APPROVED, gate.REJECTED)
    for key in ("model_fingerprint", "data_fingerprint", "eval_data_fingerprint", "timestamp", "gate_config"):
        assert record[key], key
    assert record["model_fingerprint"].startswith("sha256:")
    assert record["eval_data_fingerprint"].startswith("rows=250;")
    lo, hi = record["intervals"]["auc"]
    assert lo < record["metrics"]["auc"] < hi
    assert {"auc", "gini", "ks", "pr_auc", "brier", "ece", "log_loss"} <= set(record["metrics"])
    page = (out / "report.html").read_text()
    for needle in (
        "ROC curve",
        "KS curve",
        "Calibration",
        "Score distribution",
        "personal_status_and_sex",
        "age_band",
        "disparate impact",
        "Rating grades",
        "Jeffreys p",
        "Monotone risk drivers",
        "duration_in_month",
    ):
        assert needle in page, needle
    assert page.count("data:image/png;base64,") == 5  # the four curves and the grade plot
    # the grade table and the sweep are in the record too, every populated grade judged
    grades = record["grades"]
    assert [r["grade"] for r in grades["rows"]] == grades["scale"]["labels"]
    assert sum(r["n"] for r in grades["rows"]) == 250
    judged = {c["group"] for c in record["checks"] if c["name"] == "min_grade_p_value"}
    assert judged == {r["grade"] for r in grades["rows"] if r["n"]}
    swept = [m["feature"] for m in record["monotonicity"]]
    assert swept == [
        "duration_in_month",
        "credit_amount",
        "installment_rate_in_percentage_of_disposable_income",
    ]
    card = (out / "card.md").read_text()
    for section in (
        "## Intended use",
        "## Data",
        "## Metrics",
        "## Fairness",
        "## Limitations",
        "## Approval",
        "## Rating grades",
        "## Monotone risk drivers",
    ):
        assert section in card
    assert "| personal_status_and_sex |" in card and "| age_band |" in card


@pytest.mark.slow
def test_champion_identical_model_passes_relative_checks(setup):
    result, out = _run(setup, "champion", champion_dir=str(setup / "model"))
    rel = [c for c in result.decision.checks if c.group == "vs champion"]
    assert [c.name for c in rel] == ["max_auc_drop", "max_brier_increase"] and all(c.passed for c in rel)
    assert result.decision.champion["model_fingerprint"] == result.decision.model_fingerprint
    record = json.loads((out / "approval.json").read_text())
    assert record["champion"]["metrics"]["auc"] == pytest.approx(record["metrics"]["auc"])


@pytest.mark.slow
def test_failed_gate_override_only_when_enabled(setup):
    strict = gate.GateConfig().with_overrides({"min_auc": 0.99})
    result, _ = _run(setup, "no-override", config=strict, override_approver="a.b", override_rationale="why")
    assert result.decision.decision == gate.REJECTED and not result.decision.override.applied
    result, out = _run(
        setup,
        "override",
        config=strict,
        override_approver="a.b",
        override_rationale="interim model, RISK-7",
        allow_override=True,
    )
    record = json.loads((out / "approval.json").read_text())
    assert record["decision"] == gate.APPROVED
    assert record["override"] == {
        "approver": "a.b",
        "rationale": "interim model, RISK-7",
        "allowed": True,
        "applied": True,
    }


def _screenshot(page: Path, tmp_path: Path, height: int = 1800) -> np.ndarray:
    from PIL import Image

    if CHROMIUM is None:
        pytest.fail("chromium is not installed: bin/test installs it (apt-get install chromium)")
    shot = tmp_path / f"{page.stem}.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--window-size=1200,{height}",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)


@pytest.mark.slow
def test_html_report_renders_in_headless_chromium(setup, tmp_path):
    _, out = _run(setup, "screenshot")
    pixels = _screenshot(out / "report.html", tmp_path)
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1000
    assert pixels.std() > 20  # not blank: text, tables and plots
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200  # plots bring many colours


@pytest.mark.slow
def test_model_card_renders_in_headless_chromium(setup, tmp_path):
    import markdown

    _, out = _run(setup, "card")
    body = markdown.markdown((out / "card.md").read_text(), extensions=["tables"])
    assert body.count("<table>") >= 3  # metrics, fairness and approval tables are real tables
    page = tmp_path / "card.html"
    page.write_text(
        f"<!doctype html><meta charset='utf-8'><body style='font-family:sans-serif'>{body}</body>"
    )
    pixels = _screenshot(page, tmp_path, height=1400)
    dark = (pixels.sum(axis=2) < 200).mean()
    assert pixels.std() > 20 and 0.005 < dark < 0.5  # text on a page, neither blank nor solid


@pytest.mark.slow
def test_failed_calibration_check_reports_recalibration_evidence(setup):
    strict = gate.GateConfig().with_overrides({"max_ece": 0.0})
    result, out = _run(setup, "recal", config=strict)
    assert any(c.name == "max_ece" and not c.passed for c in result.decision.checks)
    rc = json.loads((out / "approval.json").read_text())["recalibration"]
    assert rc["method"] == "platt" and rc["fit_rows"] + rc["test_rows"] == 250
    assert "Recalibration evidence" in (out / "report.html").read_text()
    off, _ = _run(setup, "recal-off", config=strict.with_overrides({"recalibration": None}))
    assert off.decision.recalibration is None


@pytest.mark.slow
def test_champion_published_on_gcs_is_downloaded_verified_and_recorded(setup, gcs, tmp_path):
    from credit_risk import storage

    version = "gs://credit-risk-test/models/credit-risk/m-champion"
    storage.publish_dir(setup / "model", version)
    result, out = _run(setup, "gcs-champion", champion_dir=version)
    assert any(c.group == "vs champion" for c in result.decision.checks)
    record = json.loads((out / "approval.json").read_text())
    assert record["champion"]["model_uri"] == version
    assert record["champion"]["model_fingerprint"] == record["model_fingerprint"]  # the same model
    assert record["champion"]["metrics"]["auc"] == pytest.approx(record["metrics"]["auc"])
    half = "gs://credit-risk-test/models/credit-risk/m-unpublished"
    storage.write_text(storage.join(half, "model_info.json"), "{}")  # files, but no manifest
    with pytest.raises(storage.PublishError, match="not a published model version"):
        _run(setup, "half-champion", champion_dir=half)


@pytest.mark.slow
def test_champion_discovered_from_the_inference_service(setup, monkeypatch):
    """``isvc://<namespace>/<name>``: the model that InferenceService serves (read through the real
    kubernetes client from tests/kube_api_fake.py, a protocol-level fake of the API server)."""
    from credit_risk.release import deploy
    from tests.kube_api_fake import FakeKubeApi

    config = deploy.DeployConfig(name="credit-risk", namespace="credit-risk")
    with FakeKubeApi() as fake:
        monkeypatch.setenv(kube.KUBE_HOST_ENV, fake.url)
        result, _ = _run(setup, "first-model", champion_dir="isvc://credit-risk/credit-risk")
        assert result.decision.champion is None  # nothing serves yet: a first model
        fake.seed(deploy.render_inference_service(str(setup / "model"), config, "m-1"))
        result, out = _run(setup, "cluster-champion", champion_dir="isvc://credit-risk/credit-risk")
    record = json.loads((out / "approval.json").read_text())
    assert record["champion"]["model_uri"] == str(setup / "model")
    assert record["champion"]["model_fingerprint"] == record["model_fingerprint"]
