import math

import numpy as np
import pytest
import sklearn.metrics as skm

from credit_risk.errors import DataError
from credit_risk.evidence import metrics


def _cases():
    rng = np.random.default_rng(0)
    for n, ties in ((50, False), (400, True), (1000, True)):
        y = rng.integers(0, 2, n)
        s = rng.random(n)
        if ties:
            s = np.round(s, 1)  # heavy ties, as real PD buckets have
        yield y, s


@pytest.mark.parametrize("y, s", list(_cases()))
def test_against_scikit_learn(y, s):
    assert metrics.roc_auc_score(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-9)
    assert metrics.brier_score_loss(y, s) == pytest.approx(skm.brier_score_loss(y, s), abs=1e-9)
    assert metrics.log_loss(y, s) == pytest.approx(skm.log_loss(y, np.clip(s, 1e-15, 1 - 1e-15)), abs=1e-9)
    fpr, tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
    assert metrics.ks_statistic(y, s) == pytest.approx(np.max(np.abs(tpr - fpr)), abs=1e-9)
    my_fpr, my_tpr, _ = metrics.roc_curve(y, s)
    np.testing.assert_allclose(my_fpr, fpr, atol=1e-12)
    np.testing.assert_allclose(my_tpr, tpr, atol=1e-12)
    assert metrics.average_precision_score(y, s) == pytest.approx(skm.average_precision_score(y, s), abs=1e-9)
    from sklearn.calibration import calibration_curve

    prob_true, prob_pred = calibration_curve(y, s, n_bins=10, strategy="uniform")
    observed, predicted, counts = metrics.calibration_curve(y, s, n_bins=10)
    np.testing.assert_allclose(observed, prob_true, atol=1e-12)
    np.testing.assert_allclose(predicted, prob_pred, atol=1e-12)
    assert counts.sum() == len(y)
    for t in (0.3, 0.5):
        np.testing.assert_array_equal(
            metrics.confusion_matrix(y, s, t), skm.confusion_matrix(y, (s >= t).astype(int), labels=[0, 1])
        )


def test_ks_against_two_sample_definition():
    from scipy.stats import ks_2samp

    y, s = next(_cases())
    assert metrics.ks_statistic(y, s) == pytest.approx(ks_2samp(s[y == 1], s[y == 0]).statistic, abs=1e-9)


def test_hand_computed_case():
    y = [0, 0, 1, 1]
    s = [0.1, 0.4, 0.35, 0.8]
    assert metrics.roc_auc_score(y, s) == pytest.approx(0.75)
    assert metrics.gini_score(y, s) == pytest.approx(0.5)
    assert metrics.ks_statistic(y, s) == pytest.approx(0.5)
    assert metrics.brier_score_loss(y, s) == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)


def test_single_class_is_nan_not_a_guess():
    assert math.isnan(metrics.roc_auc_score([1, 1, 1], [0.2, 0.5, 0.9]))
    assert math.isnan(metrics.ks_statistic([0, 0], [0.2, 0.5]))


@pytest.mark.parametrize(
    "y, s, message",
    [
        ([0, 1, 1], [0.1, 0.2], "y_true has 3 values but y_score has 2"),
        ([0, 1], [0.1, float("nan")], "non-finite values; first at row 1"),
        ([0, 2], [0.1, 0.2], "row 1 is 2"),
        ([0, 1], [0.1, 1.2], "row 1 is 1.2"),
        ([], [], "no rows"),
    ],
)
def test_bad_input_is_a_clear_error(y, s, message):
    with pytest.raises(DataError, match=message):
        metrics.summary(y, s)


def test_ece_reference_loop():
    y, s = list(_cases())[1]
    total, bins = 0.0, np.linspace(0, 1, 11)
    for i in range(10):
        m = (s <= bins[i + 1]) & ((s > bins[i]) if i else (s >= 0))
        if m.any():
            total += m.sum() * abs(y[m].mean() - s[m].mean())
    assert metrics.expected_calibration_error(y, s) == pytest.approx(total / len(y), abs=1e-9)


def test_perfectly_calibrated_bins_have_zero_ece():
    y = np.array([0, 1, 0, 0, 1, 1, 1, 0])
    s = np.array([0.25, 0.25, 0.25, 0.25, 0.75, 0.75, 0.75, 0.75])
    assert metrics.expected_calibration_error(y, s) == pytest.approx(0.0, abs=1e-12)


def test_bootstrap_ci_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    s = np.clip(y * 0.3 + rng.random(300) * 0.7, 0, 1)
    lo, hi = metrics.bootstrap_ci(y, s, metrics.roc_auc_score, n_resamples=300, seed=7)
    assert lo < metrics.roc_auc_score(y, s) < hi
    assert (lo, hi) == metrics.bootstrap_ci(y, s, metrics.roc_auc_score, n_resamples=300, seed=7)
    assert 0.02 < hi - lo < 0.2


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_recalibration_fixes_a_miscalibrated_score(method):
    from credit_risk.evidence.calibration import recalibrate

    rng = np.random.default_rng(3)
    true_pd = rng.uniform(0.02, 0.6, 4000)
    y = (rng.random(4000) < true_pd).astype(int)
    overconfident = np.clip(true_pd**0.5, 0, 1)  # systematically too high
    r = recalibrate(y, overconfident, method, seed=1)
    assert r.fit_rows == r.test_rows == 2000
    assert r.ece_before > 0.1 and r.ece_after < 0.03
    assert r.brier_after < r.brier_before
    if method == "platt":  # monotone in the score: ranking unchanged
        assert r.auc_after == pytest.approx(r.auc_before, abs=1e-12)


def test_recalibration_method_is_validated():
    from credit_risk.errors import ConfigError
    from credit_risk.evidence.calibration import recalibrate

    with pytest.raises(ConfigError, match="must be one of"):
        recalibrate([0, 1] * 10, [0.2, 0.7] * 10, "magic")
