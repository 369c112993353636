"""Batch scoring with a real exported model: chunked, typed by the model's spec, published whole."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from credit_risk import lineage, storage
from credit_risk.dataset import data
from credit_risk.errors import ConfigError, DataError
from credit_risk.modeling.scoring import ExportedModel
from credit_risk.release import batch_scoring
from credit_risk.spec import contract
from tests.helpers import GERMAN_CSV, edited_copy, set_cell


def _scores(target):
    return pd.concat(pd.read_parquet(p) for p in sorted(Path(target).glob("part-*.parquet"))).reset_index(
        drop=True
    )


def test_scores_every_row_in_chunks_like_the_model_itself(german_model_dir, german_spec, tmp_path):
    config = batch_scoring.ScoringConfig(chunk_rows=128, batch_size=100, threshold=0.4)
    result = batch_scoring.score(german_model_dir, str(GERMAN_CSV), str(tmp_path / "scores"), config)
    assert result.rows == 1000 and len(result.files) == 8
    scores = _scores(tmp_path / "scores")
    assert list(scores.columns) == [batch_scoring.ROW_COLUMN, "pd", "decision", "model_version"]
    assert scores[batch_scoring.ROW_COLUMN].tolist() == list(range(1, 1001))
    expected = ExportedModel(german_model_dir).predict_frame(data.load_dataset(str(GERMAN_CSV), german_spec))
    np.testing.assert_allclose(scores["pd"].to_numpy(), expected, rtol=1e-6, atol=1e-7)
    assert (scores["decision"] == np.where(expected >= 0.4, contract.DECLINE, contract.APPROVE)).all()
    assert set(scores["model_version"]) == {lineage.model_version_of(german_model_dir)}
    assert result.model_version.startswith("m-")
    assert result.decline_rate == pytest.approx((expected >= 0.4).mean())
    assert storage.is_published(str(tmp_path / "scores"))
    summary = json.loads((tmp_path / "scores" / batch_scoring.SUMMARY_FILE).read_text())
    assert summary["rows"] == 1000 and summary["threshold"] == 0.4


def test_id_columns_pass_through_and_parquet_on_gcs_in_and_out(german_model_dir, tmp_path, gcs):
    client, bucket = gcs
    frame = pd.read_csv(GERMAN_CSV).drop(columns=["default"])
    frame.insert(0, "application_id", [f"A{i:05d}" for i in range(len(frame))])
    local = tmp_path / "apps.parquet"
    frame.to_parquet(local, index=False)
    client.bucket(bucket).blob("apps/part-0.parquet").upload_from_filename(str(local))
    config = batch_scoring.ScoringConfig(id_columns=("application_id",))
    result = batch_scoring.score(
        german_model_dir, f"gs://{bucket}/apps/", f"gs://{bucket}/scores/run-1", config
    )
    assert result.rows == 1000 and storage.is_published(f"gs://{bucket}/scores/run-1")
    copy = storage.local_copy(f"gs://{bucket}/scores/run-1/part-00000.parquet", str(tmp_path))
    scores = pd.read_parquet(copy)
    assert scores["application_id"].tolist() == frame["application_id"].tolist()


def test_a_bad_value_fails_with_its_row_and_publishes_nothing(german_model_dir, tmp_path):
    bad = edited_copy(GERMAN_CSV, tmp_path / "bad.csv", set_cell(700, "credit_amount", "lots"))
    config = batch_scoring.ScoringConfig(chunk_rows=256)
    with pytest.raises(
        DataError, match=r"column 'credit_amount' row 701 \(file line 702\) value 'lots' is not a number"
    ):
        batch_scoring.score(german_model_dir, bad, str(tmp_path / "scores"), config)
    assert not (tmp_path / "scores").exists()


def test_missing_columns_and_bad_config_are_refused(german_model_dir, tmp_path):
    frame = pd.read_csv(GERMAN_CSV).drop(columns=["purpose"])
    frame.to_csv(tmp_path / "no_purpose.csv", index=False)
    with pytest.raises(DataError, match=r"column\(s\) \['purpose'\] the model needs"):
        batch_scoring.score(german_model_dir, str(tmp_path / "no_purpose.csv"), str(tmp_path / "s"))
    with pytest.raises(
        DataError, match=r"column\(s\) \['loan_id'\] the model needs \(or named as id columns\)"
    ):
        batch_scoring.score(
            german_model_dir,
            str(GERMAN_CSV),
            str(tmp_path / "s"),
            batch_scoring.ScoringConfig(id_columns=("loan_id",)),
        )
    with pytest.raises(ConfigError, match="threshold must be in"):
        batch_scoring.ScoringConfig(threshold=1.5)
    assert not (tmp_path / "s").exists()
