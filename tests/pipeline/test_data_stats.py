"""TFDV statistics: the parallel fast path and the Beam path compute the same statistics."""

import numpy as np
import pandas as pd
import pytest

from credit_risk import data_stats
from credit_risk.errors import DataError
from tests.helpers import CREDIT_CSV, GERMAN_CSV


def _features(stats):
    """feature name -> serialized FeatureNameStatistics (order-free comparison)."""
    (dataset,) = stats.datasets
    return {f.path.step[0]: f for f in dataset.features}


def _assert_same_summaries(a, b):
    """Counts, moments, extremes and top values equal (histograms come from quantile sketches,
    which depend on how rows were batched)."""
    assert set(a) == set(b)
    for name in a:
        x, y = a[name], b[name]
        if y.HasField("num_stats"):
            for field in ("mean", "std_dev", "min", "max", "num_zeros"):
                assert np.isclose(getattr(x.num_stats, field), getattr(y.num_stats, field)), (name, field)
            assert x.num_stats.common_stats.num_missing == y.num_stats.common_stats.num_missing, name
            assert x.num_stats.common_stats.num_non_missing == y.num_stats.common_stats.num_non_missing, name
        else:
            assert x.string_stats.unique == y.string_stats.unique, name
            top = [(v.value, v.frequency) for v in x.string_stats.top_values]
            assert top == [(v.value, v.frequency) for v in y.string_stats.top_values], name
            assert x.string_stats.common_stats.num_missing == y.string_stats.common_stats.num_missing, name


def test_parallel_fast_path_equals_one_process_exactly(german_spec):
    one = data_stats.fast_statistics(str(GERMAN_CSV), german_spec, processes=1, batch_rows=256)
    two = data_stats.fast_statistics(
        str(GERMAN_CSV), german_spec, processes=2, batch_rows=256, split_rows=False
    )
    assert one.datasets[0].num_examples == two.datasets[0].num_examples == 1000
    a, b = _features(one), _features(two)
    assert set(a) == set(b) and len(a) == 21
    for name in a:
        assert a[name].SerializeToString(deterministic=True) == b[name].SerializeToString(
            deterministic=True
        ), name


def test_statistics_follow_the_spec_types_and_count_nulls(credit_spec):
    stats = data_stats.fast_statistics(str(CREDIT_CSV), credit_spec, processes=1)
    features = _features(stats)
    frame = pd.read_csv(CREDIT_CSV)
    income = features["Income"]
    assert income.type == income.FLOAT
    assert income.num_stats.common_stats.num_missing == int(frame["Income"].isna().sum())
    assert np.isclose(income.num_stats.mean, frame["Income"].mean())
    assert features["Home"].type == features["Home"].STRING
    assert features["default"].type == features["default"].INT


def test_same_statistics_from_parquet_shards(tmp_path, german_spec):
    frame = pd.read_csv(GERMAN_CSV, dtype=str, keep_default_na=False)
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), 3)):
        frame.iloc[rows].to_parquet(tmp_path / f"part-{i}.parquet", index=False)
    csv = _features(data_stats.fast_statistics(str(GERMAN_CSV), german_spec, processes=1))
    parquet = _features(data_stats.fast_statistics(str(tmp_path), german_spec, processes=1))
    _assert_same_summaries(csv, parquet)


def test_unreadable_csv_names_the_place(tmp_path, german_spec):
    lines = GERMAN_CSV.read_text().splitlines()
    lines[5] += ",extra"
    (tmp_path / "ragged.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"ragged.csv: not a readable CSV"):
        data_stats.fast_statistics(str(tmp_path / "ragged.csv"), german_spec, processes=1)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="the file is empty"):
        data_stats.fast_statistics(str(tmp_path / "empty.csv"), german_spec, processes=1)


@pytest.mark.slow
def test_beam_direct_runner_in_multi_process_mode_gives_the_fast_path_statistics(german_spec):
    args = ["--runner=DirectRunner", "--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    beam = _features(data_stats.beam_statistics(str(GERMAN_CSV), german_spec, args))
    fast = _features(data_stats.fast_statistics(str(GERMAN_CSV), german_spec, processes=1))
    _assert_same_summaries(beam, fast)
    assert beam["credit_amount"].num_stats.median == fast["credit_amount"].num_stats.median


def test_row_split_fast_path_matches_one_pass_counts_moments_and_top_values(tmp_path, german_spec):
    """A local CSV (here with quoted fields) is split by newline-aligned byte ranges across
    processes; merged accumulators keep counts, moments, extremes and top values exact."""
    ranges = data_stats.byte_ranges(str(GERMAN_CSV), 3)
    assert ranges is not None and len(ranges) == 3
    assert ranges[0][0] == len(GERMAN_CSV.read_bytes().split(b"\n")[0]) + 1  # after the header
    assert ranges[-1][1] == GERMAN_CSV.stat().st_size
    split = data_stats.fast_statistics(str(GERMAN_CSV), german_spec, processes=3, batch_rows=128)
    one = data_stats.fast_statistics(str(GERMAN_CSV), german_spec, processes=1)
    assert split.datasets[0].num_examples == 1000
    _assert_same_summaries(_features(split), _features(one))
