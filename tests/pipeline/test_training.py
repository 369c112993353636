import json

import numpy as np
import pytest

from credit_risk import lineage
from credit_risk.dataset import data
from credit_risk.errors import ConfigError, DataError
from credit_risk.modeling import training
from credit_risk.modeling.model import ModelConfig
from credit_risk.modeling.scoring import ExportedModel
from credit_risk.spec import contract
from tests.helpers import CREDIT_CSV, GERMAN_CSV

FAST = training.TrainingConfig(epochs=4, early_stopping_patience=2, ensemble_size=1)


@pytest.fixture(scope="module")
def credit_frames(credit_spec):
    frame = data.load_dataset(str(CREDIT_CSV), credit_spec)
    return data.split_train_eval(frame, credit_spec, 0.25, seed=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, credit_spec, credit_frames):
    train_frame, _ = credit_frames
    model = training.train(train_frame, credit_spec, FAST).model
    export_dir = tmp_path_factory.mktemp("export") / "model"
    training.export(model, credit_spec, export_dir, {"note": "test"})
    return model, export_dir


@pytest.mark.slow
def test_export_takes_raw_named_features_and_matches_keras(trained, credit_spec, credit_frames):
    import tensorflow as tf

    model, export_dir = trained
    _, held_out = credit_frames
    sig = tf.saved_model.load(str(export_dir)).signatures[contract.SIGNATURE_NAME]
    _, inputs = sig.structured_input_signature
    assert set(inputs) == {f.name for f in credit_spec.model_features}
    assert inputs["Income"].dtype == tf.float32 and inputs["Home"].dtype == tf.string
    exported = ExportedModel(export_dir).predict_frame(held_out)
    in_memory = training.predict_frame(model, held_out, credit_spec)
    np.testing.assert_allclose(exported, in_memory, atol=1e-5)
    assert held_out["Income"].isna().any()  # nulls went through the graph
    assert np.all((exported > 0) & (exported < 1))


@pytest.mark.slow
def test_unseen_category_and_missing_values_are_scored(trained, credit_spec, credit_frames):
    _, export_dir = trained
    _, held_out = credit_frames
    rows = held_out.head(3).copy()
    rows.loc[rows.index[0], "Home"] = "houseboat"  # never seen in training
    rows.loc[rows.index[1], ["Income", "Assets", "Debt"]] = np.nan
    pds = ExportedModel(export_dir).predict_frame(rows)
    assert np.all(np.isfinite(pds))


@pytest.mark.slow
def test_export_writes_spec_and_info_sidecars(trained, credit_spec):
    _, export_dir = trained
    assert (export_dir / contract.SPEC_FILE).read_text() == credit_spec.to_yaml()
    assert json.loads((export_dir / contract.MODEL_INFO_FILE).read_text()) == {"note": "test"}
    assert not list(export_dir.parent.glob(".export-*"))  # staging directory cleaned up


@pytest.mark.slow
def test_same_seed_same_weights_different_seed_different_weights(german_spec):
    frame = data.load_dataset(str(GERMAN_CSV), german_spec)
    cfg = training.TrainingConfig(epochs=2, early_stopping_patience=1, seed=3, ensemble_size=1)
    w1 = training.train(frame, german_spec, cfg).model.get_weights()
    w2 = training.train(frame, german_spec, cfg).model.get_weights()
    w3 = training.train(
        frame, german_spec, training.TrainingConfig(epochs=2, seed=4, ensemble_size=1)
    ).model.get_weights()
    assert len(w1) == len(w2) > 10
    for a, b in zip(w1, w2, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, c) for a, c in zip(w1, w3, strict=True))


@pytest.mark.slow
def test_train_and_export_records_fingerprint(tmp_path, german_spec):
    frame = data.load_dataset(str(GERMAN_CSV), german_spec)
    result = training.train_and_export(frame, german_spec, training.TrainingConfig(epochs=1), tmp_path / "m")
    info = json.loads((tmp_path / "m" / contract.MODEL_INFO_FILE).read_text())
    assert info["training"]["data_fingerprint"] == result.data_fingerprint == lineage.fingerprint(frame)
    assert result.data_fingerprint.startswith("rows=1000;sha256=")
    assert info["hyperparameters"]["epochs"] == 1 and info["dataset"] == "german_credit"
    baseline = info[contract.REASON_BASELINE_KEY]  # the applicant reason codes are measured against
    assert set(baseline) == {f.name for f in german_spec.model_features}
    assert baseline["duration_in_month"] == float(frame["duration_in_month"].median())
    assert baseline["purpose"] == frame["purpose"].mode().iloc[0]


def test_fingerprint_changes_with_content(german_spec):
    frame = data.load_dataset(str(GERMAN_CSV), german_spec)
    changed = frame.copy()
    changed.loc[0, "credit_amount"] += 1
    assert lineage.fingerprint(frame) != lineage.fingerprint(changed)


def test_single_class_training_data_is_refused(german_spec):
    frame = data.load_dataset(str(GERMAN_CSV), german_spec)
    with pytest.raises(DataError, match="single class"):
        training.train(frame[frame["default"] == 0], german_spec, FAST)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs": 0}, "epochs must be >= 1, got 0"),
        ({"learning_rate": 2.0}, "learning_rate must be in \\(0, 1\\), got 2.0"),
        ({"validation_fraction": 0.9}, "validation_fraction"),
    ],
)
def test_bad_training_config(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        training.TrainingConfig(**kwargs)


def test_bad_model_config():
    with pytest.raises(ConfigError, match=r"dropout must be in \[0, 1\), got 1.5"):
        ModelConfig(dropout=1.5)


@pytest.mark.slow
def test_an_ensemble_exports_one_model_averaging_its_members(tmp_path, german_spec):
    frame = data.load_dataset(str(GERMAN_CSV), german_spec)
    config = training.TrainingConfig(epochs=2, ensemble_size=2)
    fitted = training.train(frame, german_spec, config)
    assert len(fitted.members) == 2
    rows = frame.head(30)
    each = [training.predict_frame(m.model, rows, german_spec) for m in fitted.members]
    assert not np.allclose(each[0], each[1])  # different seeds and validation splits
    training.export(fitted.model, german_spec, tmp_path / "m", {})
    np.testing.assert_allclose(
        ExportedModel(tmp_path / "m").predict_frame(rows), np.mean(each, axis=0), atol=1e-5
    )


def test_ensemble_size_is_bounded():
    with pytest.raises(ConfigError, match=r"ensemble_size must be in \[1, 10\], got 0"):
        training.TrainingConfig(ensemble_size=0)


@pytest.mark.slow
def test_monotone_constraints_make_every_declared_driver_monotone(credit_spec, credit_frames):
    """With model.monotone_constraints every declared feature passes the evaluation sweep exactly
    (whatever the weights learned), on the trained Keras model and its ensemble average; the
    unconstrained model of the same data and seed is not monotone in all of them (the sweep can fail)."""
    from credit_risk.evidence import monotonicity

    train_frame, held_out = credit_frames
    config = training.TrainingConfig(
        epochs=4, early_stopping_patience=4, ensemble_size=2, model=ModelConfig(monotone_constraints=True)
    )
    model = training.train(train_frame, credit_spec, config).model

    def predict(rows):
        return training.predict_frame(model, rows, credit_spec)

    sweeps = monotonicity.sweep(predict, held_out, credit_spec, sample=100)
    assert [s.feature for s in sweeps] == [f.name for f in credit_spec.monotone_features]
    assert all(s.worst_violation <= 1e-6 for s in sweeps), [(s.feature, s.worst_violation) for s in sweeps]
    names = {w.path for w in model.weights}
    assert any("wide_monotone_Debt" in n for n in names)

    plain = training.train(train_frame, credit_spec, FAST).model
    free = monotonicity.sweep(
        lambda r: training.predict_frame(plain, r, credit_spec), held_out, credit_spec, sample=100
    )
    assert max(s.worst_violation for s in free) > 1e-4


def test_master_scale_from_the_spec_or_fitted_at_training_time(credit_spec, credit_frames):
    from dataclasses import replace

    from credit_risk.spec.feature_spec import ScaleSetting

    train_frame, _ = credit_frames
    fixed = training.master_scale(credit_spec, None, train_frame)
    assert fixed.boundaries == credit_spec.master_scale.boundaries and fixed.source == "spec boundaries"
    assert training.master_scale(replace(credit_spec, master_scale=None), None, train_frame) is None

    class Constant:  # a "model" whose PDs are the row positions spread over (0, 1)
        def predict(self, inputs, verbose=0, batch_size=0):
            n = len(next(iter(inputs.values())))
            return {contract.OUTPUT_KEY: np.linspace(0.01, 0.99, n)}

    fitted = training.master_scale(
        replace(credit_spec, master_scale=ScaleSetting(grades=4)), Constant(), train_frame
    )
    assert len(fitted.boundaries) == 3 and "4 quantile grades" in fitted.source
