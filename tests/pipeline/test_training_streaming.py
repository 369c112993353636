"""Training streamed from files (local, sharded Parquet, gs://) and across two worker processes."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from credit_risk import lineage
from credit_risk.dataset import data
from credit_risk.errors import ConfigError
from credit_risk.modeling import training, training_data
from credit_risk.modeling.scoring import ExportedModel
from credit_risk.spec import contract
from tests.helpers import GERMAN_CSV, GERMAN_SPEC, REPO, free_port

QUICK = training.TrainingConfig(epochs=2, batch_size=128, early_stopping_patience=1, ensemble_size=1)


@pytest.fixture(scope="module")
def german_frame(german_spec):
    return data.load_dataset(str(GERMAN_CSV), german_spec)


@pytest.fixture(scope="module")
def parquet_shards(tmp_path_factory, german_frame):
    out = tmp_path_factory.mktemp("parquet")
    for i, rows in enumerate(np.array_split(np.arange(len(german_frame)), 4)):
        german_frame.iloc[rows].to_parquet(out / f"part-{i:04d}.parquet", index=False)
    return out


@pytest.mark.slow
def test_streamed_training_exports_a_servable_model_with_its_provenance(
    tmp_path, german_spec, german_frame, parquet_shards
):
    source = training_data.FileSource(str(parquet_shards / "part-*.parquet"), chunk_rows=200)
    result = training.train_and_export(source, german_spec, QUICK, tmp_path / "model")
    info = json.loads((tmp_path / "model" / contract.MODEL_INFO_FILE).read_text())
    assert result.data_fingerprint == lineage.fingerprint(german_frame)  # same rows, streamed
    assert info["training"]["data_fingerprint"] == result.data_fingerprint
    assert info["training"]["rows"] == 1000 and info["workers"] == 1
    assert info["hyperparameters"]["batch_size"] == 128 and info["package_version"]
    assert set(info[contract.REASON_BASELINE_KEY]) == {f.name for f in german_spec.model_features}
    pds = ExportedModel(tmp_path / "model").predict_frame(german_frame.head(20))
    assert np.all((pds > 0) & (pds < 1))


@pytest.mark.slow
def test_streamed_training_is_deterministic(german_spec, parquet_shards):
    source = training_data.FileSource(str(parquet_shards), chunk_rows=300)
    a = training.train(source, german_spec, QUICK).model.get_weights()
    b = training.train(source, german_spec, QUICK).model.get_weights()
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.slow
def test_training_streams_sharded_csv_from_gcs(gcs, tmp_path, german_spec, german_frame):
    client, bucket = gcs
    text = GERMAN_CSV.read_text().splitlines(keepends=True)
    header, rows = text[0], text[1:]
    for i, part in enumerate((rows[:600], rows[600:])):
        client.bucket(bucket).blob(f"snapshots/german/part-{i}.csv").upload_from_string(
            header + "".join(part)
        )
    source = training_data.FileSource(f"gs://{bucket}/snapshots/german/part-*.csv", chunk_rows=256)
    assert len(source.files()) == 2
    result = training.train_and_export(source, german_spec, QUICK, tmp_path / "model")
    assert result.data_fingerprint == lineage.fingerprint(german_frame)
    assert (tmp_path / "model" / "saved_model.pb").exists()


@pytest.mark.slow
def test_wide_part_can_use_ftrl_with_l1_as_in_the_paper(german_spec, german_frame):
    config = training.config_from_overrides(
        [
            "epochs=3",
            'wide_optimizer="ftrl"',
            "wide_learning_rate=0.05",
            "model.l1=0.01",
            "class_weighting=true",
            "ensemble_size=1",
        ]
    )
    fitted = training.train(german_frame, german_spec, config)
    wide = fitted.model.get_layer("wide_logit").get_weights()[0]
    assert np.sum(wide == 0.0) > 0  # FTRL's L1 makes weights exactly zero: a sparse linear part
    assert np.isfinite(fitted.history["val_loss"]).all()


def test_training_overrides_are_checked():
    assert training.config_from_overrides(["model.hidden_units=[16, 8]"]).model.hidden_units == (16, 8)
    with pytest.raises(ConfigError, match="unknown training setting 'epoch=3'"):
        training.config_from_overrides(["epoch=3"])
    with pytest.raises(ConfigError, match="wide_optimizer must be one of"):
        training.config_from_overrides(['wide_optimizer="sgd"'])


@pytest.mark.slow
def test_two_worker_processes_train_together_and_export_once(tmp_path, parquet_shards):
    """MultiWorkerMirroredStrategy for real: two processes on 127.0.0.1 under TF_CONFIG."""
    ports = [free_port(), free_port()]
    out = tmp_path / "model"
    procs = []
    for index in range(2):
        scratch = tmp_path / f"tmp-{index}"
        scratch.mkdir()
        env = dict(os.environ, TMPDIR=str(scratch))
        env["TF_CONFIG"] = json.dumps(
            {
                "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                "task": {"type": "worker", "index": index},
            }
        )
        argv = [sys.executable, "-m", "credit_risk.app.cli", "train", "--data", str(parquet_shards)]
        argv += [
            "--spec",
            str(GERMAN_SPEC),
            "--output",
            str(out),
            "--set",
            "epochs=2",
            "batch_size=64",
            "ensemble_size=1",
        ]
        procs.append(
            subprocess.Popen(
                argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    results = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-3000:]
        assert "CollectiveAllReduceStrategy with 2 replica(s)" in stderr
        results.append(json.loads(stdout))
    assert [r["exported"] for r in results] == [True, False]  # only the chief writes
    assert results[0]["metrics"] == results[1]["metrics"]  # one model: weights kept in sync
    info = json.loads((out / contract.MODEL_INFO_FILE).read_text())
    assert info["workers"] == 2 and info["training"]["rows"] == 1000
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("model")] == ["model"]
    assert not any((tmp_path / "tmp-1").iterdir())  # the worker's scratch export was removed
    frame = pd.read_parquet(parquet_shards / "part-0000.parquet").head(5)
    assert np.all(np.isfinite(ExportedModel(out).predict_frame(frame)))


@pytest.mark.slow
def test_train_step_streams_the_snapshot_when_asked(tmp_path, german_spec, german_frame):
    from credit_risk import steps

    result = steps.train_step(str(GERMAN_CSV), str(GERMAN_SPEC), QUICK, str(tmp_path / "m"), stream=True)
    info = json.loads((tmp_path / "m" / contract.MODEL_INFO_FILE).read_text())
    assert result.data_fingerprint == lineage.fingerprint(german_frame)
    # the streamed path's reason baseline comes from the profile: sample median, modal category
    assert info[contract.REASON_BASELINE_KEY]["purpose"] in set(german_frame["purpose"])
