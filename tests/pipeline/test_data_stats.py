"""TFDV statistics: the parallel fast path and the Beam path compute the same statistics."""

import numpy as np
import pandas as pd
import pytest

from credit_risk.dataset import data_stats
from credit_risk.errors import DataError
from credit_risk.spec import values
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


@pytest.mark.parametrize("source", ["csv", "parquet"])
def test_parallel_fast_path_equals_one_process_exactly(source, tmp_path, german_spec):
    """Features are split across processes, never rows: every process count gives the
    byte-identical statistics of one process (histograms from quantile sketches included)."""
    uri = str(GERMAN_CSV)
    if source == "parquet":
        frame = pd.read_csv(GERMAN_CSV, dtype=str, keep_default_na=False)
        for i, rows in enumerate(np.array_split(np.arange(len(frame)), 3)):
            frame.iloc[rows].to_parquet(tmp_path / f"part-{i}.parquet", index=False)
        uri = str(tmp_path)
    one = _features(data_stats.fast_statistics(uri, german_spec, processes=1, batch_rows=256))
    assert len(one) == 21
    for processes in (2, 3):
        many = data_stats.fast_statistics(uri, german_spec, processes=processes, batch_rows=256)
        assert many.datasets[0].num_examples == 1000
        other = _features(many)
        assert set(other) == set(one)
        for name in one:
            assert one[name].SerializeToString(deterministic=True) == other[name].SerializeToString(
                deterministic=True
            ), (processes, name)


def test_fast_path_gives_tfdvs_own_in_memory_statistics(german_spec):
    """Our generators (TFDV's, with the Beam-only string-length sampling off) on 2 processes give
    the statistics of TFDV's own in-memory call on the whole table - every field."""
    import pyarrow as pa
    from tensorflow_data_validation.statistics import stats_impl
    from tensorflow_data_validation.statistics.generators import top_k_uniques_sketch_stats_generator as topk
    from tfx_bsl.arrow import table_util

    (table_batch,) = pa.Table.from_batches(list(data_stats.raw_batches(str(GERMAN_CSV)))).to_batches(
        max_chunksize=None
    )
    whole = table_util.CanonicalizeRecordBatch(values.typed_batch(table_batch, german_spec))
    tfdv_own = stats_impl.generate_statistics_in_memory(whole, data_stats.stats_options(german_spec))
    fast = data_stats.fast_statistics(str(GERMAN_CSV), german_spec, processes=2, batch_rows=300)
    assert data_stats.statistics_differences(fast, tfdv_own) == []
    # the switch is TFDV's own constructor argument; if an upgrade renames it, this says so
    (generator,) = [
        g
        for g in data_stats.in_memory_generators(german_spec)
        if isinstance(g, topk.TopKUniquesSketchStatsGenerator)
    ]
    assert generator._length_counter_sampling_rate == 0.0
    assert topk.TopKUniquesSketchStatsGenerator()._length_counter_sampling_rate > 0.0


def test_statistics_differences_names_the_field(german_spec):
    one = data_stats.fast_statistics(str(GERMAN_CSV), german_spec, processes=1)
    other = type(one)()
    other.CopyFrom(one)
    assert data_stats.statistics_differences(one, other) == []
    feature = next(f for f in other.datasets[0].features if f.path.step[0] == "credit_amount")
    feature.num_stats.max += 1.0
    other.datasets[0].num_examples += 1
    found = data_stats.statistics_differences(one, other)
    assert found[0] == "num_examples"
    assert [d.split(":")[0] for d in found[1:]] == [".credit_amount.numStats.max"]


def test_column_costs_follow_text_length_and_groups_balance_them(german_spec):
    import pyarrow as pa

    sample = pa.RecordBatch.from_pydict(
        {
            "credit_amount": pa.array([1000.0, 2500.0]),
            "purpose": pa.array(["x" * 25, "y" * 25]),
            "job": pa.array([None, None], pa.string()),
            "default": pa.array([0, 1]),
        }
    )
    costs = data_stats.column_costs(sample, german_spec)
    assert costs == {"credit_amount": 1.0, "purpose": 3.0, "job": 1.0, "default": 1.0}
    groups = data_stats._column_groups({"a": 5.0, "b": 1.0, "c": 1.0, "d": 2.0, "e": 1.0}, 2)
    assert sorted(map(sorted, groups)) == [["a"], ["b", "c", "d", "e"]]
    assert data_stats._column_groups({"a": 1.0}, 4) == [["a"]]


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
