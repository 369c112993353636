"""Synthetic benchmark data keeps the real schema, ranges, nulls and label relationship."""

import numpy as np
import pandas as pd

from credit_risk.dataset import data, synthetic
from credit_risk.modeling import training_data
from tests.helpers import CREDIT_CSV


def test_synthetic_rows_pass_the_same_checks_as_real_ones(tmp_path, credit_spec):
    files = synthetic.write_parquet_shards(str(CREDIT_CSV), credit_spec, 5_000, tmp_path, rows_per_file=2_000)
    assert [f.name for f in files] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    real = data.load_dataset(str(CREDIT_CSV), credit_spec)
    assert list(frame.columns) == list(real.columns) and len(frame) == 5_000
    for f in credit_spec.features:
        if f.is_numeric and f.min is not None:
            assert frame[f.name].min() >= f.min
        if f.is_numeric and f.max is not None:
            assert frame[f.name].max() <= f.max
    assert frame["Income"].isna().mean() > 0  # real nulls survive
    assert abs(frame["default"].mean() - real["default"].mean()) < 0.03
    assert frame.duplicated().mean() < 0.5  # jitter: mostly not copies of real rows
    profile = training_data.analyze(training_data.FileSource(str(tmp_path)), credit_spec)  # spec-valid
    assert profile.rows == 5_000


def test_synthetic_is_seeded(credit_spec):
    real = data.load_dataset(str(CREDIT_CSV), credit_spec)
    a = next(synthetic.chunks(real, credit_spec, 100, seed=3))
    b = next(synthetic.chunks(real, credit_spec, 100, seed=3))
    pd.testing.assert_frame_equal(a, b)
    assert not np.array_equal(a["Amount"], next(synthetic.chunks(real, credit_spec, 100, seed=4))["Amount"])
