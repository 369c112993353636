"""Population stability (PSI) and TFDV drift of a real model's score and inputs."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from credit_risk.errors import DataError
from credit_risk.release import batch_scoring, monitoring, monitoring_report
from tests.helpers import GERMAN_CSV


def test_psi_matches_the_textbook_formula_and_bands():
    expected = np.array([10, 20, 30, 40])
    actual = np.array([20, 20, 30, 30])
    e, a = expected / 100, actual / 100
    assert monitoring.psi(expected, actual) == pytest.approx(float(np.sum((a - e) * np.log(a / e))))
    assert monitoring.psi(expected, expected * 7) == pytest.approx(0.0)
    assert monitoring.psi([1, 0], [0, 1]) == pytest.approx(2 * (1 - 1e-4) * math.log(1 / 1e-4), rel=1e-6)
    assert [monitoring.band(v) for v in (0.0, 0.0999, 0.1, 0.2499, 0.25, 3.0)] == [
        "stable", "stable", "watch", "watch", "act", "act",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="non-empty"):
        monitoring.psi([0, 0], [1, 1])


def test_bins_count_missing_and_unseen_values():
    numeric = monitoring.numeric_bins("x", np.arange(100.0), bins=4)
    assert numeric.edges == (24.75, 49.5, 74.25)
    assert numeric.counts([0.0, 30.0, 99.0, np.nan, np.nan]).tolist() == [1, 1, 0, 1, 2]
    categorical = monitoring.categorical_bins("c", ["a", "b", "a", None, ""])
    assert categorical.categories == ("a", "b")
    assert categorical.counts(["a", "z", None, "b", "b"]).tolist() == [1, 2, 1, 1]  # a, b, <other>, <missing>
    assert categorical.labels() == ["a", "b", monitoring.OTHER, monitoring.MISSING]


def _shifted(tmp_path):
    frame = pd.read_csv(GERMAN_CSV)
    frame["credit_amount"] = frame["credit_amount"] * 3  # loans three times larger
    frame["duration_in_month"] = frame["duration_in_month"] + 24
    path = tmp_path / "shifted.csv"
    frame.drop(columns=["default"]).to_csv(path, index=False)
    return str(path)


def test_same_population_is_stable(german_model_dir):
    result = monitoring.monitor(german_model_dir, str(GERMAN_CSV), str(GERMAN_CSV))
    assert result.verdict == monitoring.STABLE
    assert result.score_psi == pytest.approx(0.0, abs=1e-9)  # the whole baseline is the sample
    assert max(result.feature_psi.values()) == pytest.approx(0.0, abs=1e-9)
    assert result.current_rows == 1000 and result.baseline_rows_sampled == 1000
    assert result.tfdv_drift and not any(d["drifted"] for d in result.tfdv_drift.values())


def test_a_shifted_population_is_act_with_the_moved_features_named(german_model_dir, tmp_path):
    current = _shifted(tmp_path)
    scores = tmp_path / "scores"
    batch_scoring.score(german_model_dir, current, str(scores))
    result = monitoring.monitor(german_model_dir, str(GERMAN_CSV), current, scores_uri=str(scores))
    assert result.verdict == monitoring.ACT
    assert (
        result.bands["credit_amount"] == monitoring.ACT
        and result.bands["duration_in_month"] == monitoring.ACT
    )
    assert result.feature_psi["purpose"] == pytest.approx(0.0, abs=1e-9)  # untouched
    assert result.score_psi > 0.1  # larger, longer loans score riskier
    assert result.tfdv_drift["credit_amount"]["drifted"] and not result.tfdv_drift["purpose"]["drifted"]
    # the scores read back from batch scoring equal scoring inside the monitor
    inline = monitoring.monitor(german_model_dir, str(GERMAN_CSV), current, with_tfdv=False)
    assert inline.score_psi == pytest.approx(result.score_psi, rel=1e-6)
    paths = monitoring_report.write_outputs(result, tmp_path / "out")
    saved = json.loads(paths["result"].read_text())
    assert saved["verdict"] == "act" and saved["bands"]["credit_amount"] == "act"
    html = paths["report"].read_text()
    assert html.count("data:image/png;base64,") == 2 and "credit_amount" in html
    assert "| credit_amount |" in paths["verdict"].read_text()


def test_scores_of_other_data_are_refused(german_model_dir, tmp_path):
    scores = tmp_path / "scores"
    batch_scoring.score(german_model_dir, str(GERMAN_CSV), str(scores))
    half = tmp_path / "half.csv"
    pd.read_csv(GERMAN_CSV).head(500).to_csv(half, index=False)
    unpublished = tmp_path / "unpublished"
    unpublished.mkdir()
    (unpublished / "part-00000.parquet").write_bytes((scores / "part-00000.parquet").read_bytes())
    from credit_risk import storage

    with pytest.raises(storage.PublishError, match="interrupted or failed"):
        monitoring.monitor(german_model_dir, str(GERMAN_CSV), str(GERMAN_CSV), scores_uri=str(unpublished))
    with pytest.raises(DataError, match=r"holds 1000 scores but .* has 500 rows"):
        monitoring.monitor(
            german_model_dir, str(GERMAN_CSV), str(half), scores_uri=str(scores), with_tfdv=False
        )


def test_current_data_without_a_model_input_names_the_file_and_column(german_model_dir, tmp_path):
    for suffix in ("csv", "parquet"):
        current = tmp_path / f"no-purpose.{suffix}"
        frame = pd.read_csv(GERMAN_CSV).drop(columns=["purpose"])
        if suffix == "csv":
            frame.to_csv(current, index=False)
        else:
            frame.to_parquet(current, index=False)
        with pytest.raises(
            DataError, match=r"no-purpose\.\w+: column\(s\) \['purpose'\] the model needs are not"
        ):
            monitoring.monitor(german_model_dir, str(GERMAN_CSV), str(current), with_tfdv=False)


def test_the_baseline_sample_is_bounded_and_uniform(german_spec, tmp_path):
    config = monitoring.MonitoringConfig(baseline_sample_rows=200, chunk_rows=100)
    sample = monitoring.baseline_sample(str(GERMAN_CSV), german_spec, config)
    assert len(sample) == 200
    full = pd.read_csv(GERMAN_CSV)
    # a uniform sample: the mean is within 4 standard errors of the population's
    se = full["credit_amount"].std() / math.sqrt(200)
    assert abs(sample["credit_amount"].mean() - full["credit_amount"].mean()) < 4 * se


@pytest.mark.slow
def test_monitoring_pipeline_runs_locally_and_the_cli_exits_3_on_act(german_model_dir, tmp_path, capsys):
    """The compiled monitoring pipeline on the KFP local runner: importer -> batch score -> monitor."""
    from credit_risk.app import cli

    current = _shifted(tmp_path)
    args = ["monitor", "--model", str(german_model_dir), "--baseline", str(GERMAN_CSV), "--current", current]
    assert cli.main([*args, "--pipeline-root", str(tmp_path / "runs")]) == cli.EXIT_REJECTED
    printed = capsys.readouterr().out
    assert "credit-risk monitoring run: ACT" in printed and "credit_amount" in printed
    run_dir = next((tmp_path / "runs").glob("credit-risk-monitoring-*"))
    scores = pd.concat(
        pd.read_parquet(p) for p in (run_dir / "batch-score" / "scores").glob("part-*.parquet")
    )
    assert len(scores) == 1000
    executor = json.loads((run_dir / "monitor" / "executor_output.json").read_text())
    logged = executor["artifacts"]["metrics"]["artifacts"][0]["metadata"]
    assert logged["verdict_level"] == 2 and logged["psi_credit_amount"] > 0.25
    assert "data:image/png" in (run_dir / "monitor" / "report").read_text()


def test_score_cli_writes_parquet(german_model_dir, tmp_path, capsys):
    from credit_risk.app import cli

    out = tmp_path / "scores"
    args = ["score", "--model", str(german_model_dir), "--data", str(GERMAN_CSV), "--output", str(out)]
    assert cli.main([*args, "--threshold", "0.3"]) == cli.EXIT_OK
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 1000 and summary["threshold"] == 0.3
    assert len(pd.read_parquet(out / "part-00000.parquet")) == 1000


def test_fail_on_act_fails_the_monitor_step(german_model_dir, tmp_path):
    """The monitor component's own body (kfp's python_func) with real artifacts: "act" + fail_on_act
    raises after the report and verdict are written (for alerting on a schedule)."""
    from credit_risk.components import monitor
    from kfp import dsl

    from credit_risk.errors import ModelRejectedError

    current = _shifted(tmp_path)
    scores = tmp_path / "scores"
    batch_scoring.score(german_model_dir, current, str(scores))

    def artifact(cls, name):
        return cls(name=name, uri=str(tmp_path / "out" / name))

    (tmp_path / "out").mkdir()
    outputs = {n: artifact(c, n) for n, c in (("metrics", dsl.Metrics), ("report", dsl.HTML),
               ("verdict", dsl.Markdown), ("result", dsl.Artifact))}  # fmt: skip
    with pytest.raises(ModelRejectedError, match="population stability: verdict ACT"):
        monitor.python_func(
            model=dsl.Model(name="model", uri=str(german_model_dir)),
            scores=dsl.Dataset(name="scores", uri=str(scores)),
            baseline_data_uri=str(GERMAN_CSV),
            current_data_uri=current,
            baseline_sample_rows=200_000,
            drift_threshold=0.1,
            fail_on_act=True,
            **outputs,
        )
    assert "ACT" in (tmp_path / "out" / "verdict").read_text()
    assert outputs["metrics"].metadata["verdict_level"] == 2
