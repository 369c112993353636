"""The streaming training-data layer: checks before training, chunk-invariance, sharding, GCS."""

import numpy as np
import pandas as pd
import pytest

from credit_risk import lineage
from credit_risk.dataset import data
from credit_risk.errors import DataError
from credit_risk.modeling import training, training_data
from credit_risk.spec import contract
from tests.helpers import CREDIT_CSV, GERMAN_CSV, drop_column, edited_copy, set_cell, set_column


@pytest.fixture(scope="module")
def german_frame(german_spec):
    return data.load_dataset(str(GERMAN_CSV), german_spec)


def _shards(tmp_path, frame: pd.DataFrame, n: int, fmt: str) -> str:
    """``frame`` written as ``n`` files part-0000.<fmt> ... (raw, as a warehouse export would be)."""
    out = tmp_path / f"shards-{fmt}"
    out.mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(frame)), n)):
        chunk = frame.iloc[part]
        if fmt == "csv":
            chunk.to_csv(out / f"part-{i:04d}.csv", index=False)
        else:
            chunk.to_parquet(out / f"part-{i:04d}.parquet", index=False)
    return str(out)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_sharded_files_stream_to_the_same_rows_and_fingerprint_as_the_frame(
    tmp_path, german_spec, german_frame, fmt
):
    source = training_data.FileSource(_shards(tmp_path, german_frame, 3, fmt), chunk_rows=97)
    streamed = pd.concat([chunk for _, chunk in source.chunks(german_spec)], ignore_index=True)
    pd.testing.assert_frame_equal(streamed, german_frame[german_spec.columns].reset_index(drop=True))
    profile = training_data.analyze(source, german_spec)
    assert profile.fingerprint == lineage.fingerprint(german_frame)
    assert profile.rows == 1000 and profile.positives == int(german_frame["default"].sum())


def test_profile_is_independent_of_chunking(german_spec):
    profiles = [
        training_data.analyze(
            training_data.FileSource(str(GERMAN_CSV), chunk_rows=n), german_spec, 0.2, seed=7
        )
        for n in (64, 333, 100_000)
    ]
    a, b, c = profiles
    assert a.validation_rows == b.validation_rows == c.validation_rows
    assert 150 < a.validation_rows < 250  # ~20 % by the seeded hash
    for name in a.numeric:
        for other in (b, c):
            assert np.isclose(a.numeric[name].mean, other.numeric[name].mean, rtol=1e-12)
            assert np.isclose(a.numeric[name].variance, other.numeric[name].variance, rtol=1e-9)
            assert sorted(a.numeric[name].sample) == sorted(other.numeric[name].sample)
    assert a.categories == b.categories == c.categories


def test_streaming_mean_and_variance_match_numpy(german_spec, german_frame):
    profile = training_data.analyze(training_data.FileSource(str(GERMAN_CSV), chunk_rows=50), german_spec)
    values = german_frame["credit_amount"].to_numpy()
    assert np.isclose(profile.numeric["credit_amount"].mean, values.mean(), rtol=1e-12)
    assert np.isclose(profile.numeric["credit_amount"].variance, values.var(), rtol=1e-9)


def test_reservoir_sample_is_bounded_and_uniform(monkeypatch):
    monkeypatch.setattr(training_data, "SAMPLE_CAP", 1000)
    p = training_data.NumericProfile()
    rng = np.random.default_rng(0)
    for start in range(0, 100_000, 7_000):
        p.add(np.arange(start, min(start + 7_000, 100_000), dtype=float), rng)
    assert len(p.sample) == 1000 and p.count == 100_000
    # a uniform sample of 0..99999: its quartiles sit near 25k/50k/75k (not the first values seen)
    q = np.quantile(p.sample, [0.25, 0.5, 0.75])
    np.testing.assert_allclose(q, [25_000, 50_000, 75_000], atol=5_000)


def test_validation_split_is_disjoint_and_complete(german_spec):
    source = training_data.FileSource(str(GERMAN_CSV), chunk_rows=128)
    kw = {"validation_fraction": 0.2, "seed": 3, "shuffle": False}
    fit = [y for _, y in training_data.batches(source, german_spec, 50, split="fit", **kw)]
    val = [y for _, y in training_data.batches(source, german_spec, 50, split="validation", **kw)]
    assert sum(len(y) for y in fit) + sum(len(y) for y in val) == 1000
    mask = training_data.validation_mask(1, 1000, 0.2, 3)
    assert sum(len(y) for y in val) == int(mask.sum())


def _rows(batches):
    """Each streamed row as a tuple of a few of its values (enough to tell rows apart)."""
    cols = ("credit_amount", "duration_in_month", "purpose")
    return [tuple(r) for x, _ in batches for r in zip(*(x[c][:, 0] for c in cols), strict=True)]


@pytest.mark.parametrize("files", [1, 4])
def test_worker_shards_are_disjoint_and_cover_every_fit_row(tmp_path, german_spec, german_frame, files):
    uri = str(GERMAN_CSV) if files == 1 else _shards(tmp_path, german_frame, files, "csv")
    source = training_data.FileSource(uri, chunk_rows=100)
    kw = {"split": "fit", "validation_fraction": 0.2, "seed": 1, "epoch": 2}
    seen = []
    for i in range(2):
        seen += _rows(training_data.batches(source, german_spec, 32, shard=(i, 2), **kw))
    everything = _rows(training_data.batches(source, german_spec, 32, **kw))
    assert len(seen) == len(everything) > 700
    assert sorted(seen) == sorted(everything)


def test_epochs_are_shuffled_differently_but_reproducibly(german_spec):
    source = training_data.FileSource(str(GERMAN_CSV))

    def first_batch(epoch):
        kw = {"split": "fit", "validation_fraction": 0.2, "seed": 5, "epoch": epoch}
        return next(training_data.batches(source, german_spec, 16, **kw))[0]["credit_amount"]

    np.testing.assert_array_equal(first_batch(0), first_batch(0))
    assert not np.array_equal(first_batch(0), first_batch(1))


# --- bad input: a clear error before any training starts -----------------------------------------
def _bad_csv(tmp_path, edit) -> str:
    return edited_copy(GERMAN_CSV, tmp_path / "bad.csv", edit)


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            drop_column("purpose"),
            r"column\(s\) \['purpose'\] named by feature spec 'german_credit' are not in",
        ),
        (set_cell(41, "default", "2"), r"label 'default' row 42 value '2' is not 0 or 1"),
        (set_cell(6, "default", ""), r"label 'default' row 7 value nan is not 0 or 1"),
        (
            set_cell(99, "credit_amount", "lots"),
            r"column 'credit_amount' row 100 value 'lots' is not a number",
        ),
        (set_column("age_in_years", ""), r"model input\(s\) \['age_in_years'\] have no values \(all null\)"),
        (set_column("default", "0"), r"single class"),
        (lambda h, r: (h, []), r"zero data rows"),
    ],
    ids=["missing-column", "label-2", "label-null", "text-in-numeric", "all-null", "one-class", "zero-rows"],
)
def test_bad_training_data_is_refused_before_training(tmp_path, german_spec, edit, message):
    uri = _bad_csv(tmp_path, edit)
    with pytest.raises(DataError, match=message):
        training_data.analyze(training_data.FileSource(uri, chunk_rows=30), german_spec, 0.2)


def test_bad_data_stops_train_and_export_before_a_model_is_written(tmp_path, german_spec):
    uri = _bad_csv(tmp_path, set_cell(500, "default", "yes"))
    out = tmp_path / "model"
    with pytest.raises(DataError, match="row 501 value 'yes' is not 0 or 1"):
        training.train_and_export(
            training_data.FileSource(uri), german_spec, training.TrainingConfig(epochs=1), out
        )
    assert not out.exists() and not list(tmp_path.glob(".export-*"))


def test_empty_file_and_missing_files_are_clear(tmp_path, german_spec):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="the file is empty"):
        training_data.analyze(training_data.FileSource(str(tmp_path / "empty.csv")), german_spec)
    with pytest.raises(FileNotFoundError, match="no data files at"):
        training_data.FileSource(str(tmp_path / "nothing-*.parquet")).files()


def test_credit_data_nulls_stream_as_missing(credit_spec):
    chunks = [c for _, c in training_data.FileSource(str(CREDIT_CSV), chunk_rows=500).chunks(credit_spec)]
    frame = pd.concat(chunks, ignore_index=True)
    assert frame["Income"].isna().sum() > 0 and frame["Income"].dtype == np.float64
    arrays = contract.frame_to_arrays(frame, credit_spec)
    assert np.isnan(arrays["Income"]).any() and arrays["Income"].dtype == np.float32
    assert (arrays["Home"] == "").any() or frame["Home"].notna().all()


def test_frame_conversion_equals_the_request_contract(credit_spec):
    """Training batches and served requests turn the same values into the same model inputs."""
    frame = data.load_dataset(str(CREDIT_CSV), credit_spec).head(300)
    columnwise = contract.frame_to_arrays(frame, credit_spec)
    per_value = contract.columns_to_arrays({c: frame[c].tolist() for c in frame.columns}, credit_spec)
    for name, array in per_value.items():
        assert columnwise[name].dtype == array.dtype and columnwise[name].shape == array.shape
        np.testing.assert_array_equal(columnwise[name], array)


def test_streamed_split_is_a_seeded_partition_independent_of_chunking(tmp_path, german_spec, german_frame):
    def split(chunk_rows: int, seed: int, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        source = training_data.FileSource(str(GERMAN_CSV), chunk_rows=chunk_rows)
        train, held = tmp_path / name / "train.parquet", tmp_path / name / "eval.parquet"
        counts = training_data.split_stream(source, german_spec, 0.2, seed, train, held)
        frames = data.load_dataset(str(train), german_spec), data.load_dataset(str(held), german_spec)
        assert counts == (len(frames[0]), len(frames[1]))
        assert sorted(p.name for p in (tmp_path / name).iterdir()) == [
            "eval.parquet",
            "train.parquet",
        ]  # no partials
        return frames

    train, held = split(1000, 7, "a")
    # a partition of the rows: every row once, in train or held out (the data has duplicate rows
    # only by chance, so compare the multisets)
    both = pd.concat([train, held]).sort_values(list(german_frame.columns)).reset_index(drop=True)
    expected = german_frame.sort_values(list(german_frame.columns)).reset_index(drop=True)
    pd.testing.assert_frame_equal(both, expected)
    assert 150 <= len(held) <= 250  # 20 % of 1000 by a seeded hash: binomial, sd ~13
    rate = german_frame["default"].mean()
    assert abs(held["default"].mean() - rate) < 0.08  # class share in expectation (sd ~0.03 here)
    again_train, again_held = split(64, 7, "b")  # other chunking, same split
    pd.testing.assert_frame_equal(again_held, held)
    pd.testing.assert_frame_equal(again_train, train)
    _, other_held = split(1000, 8, "c")
    assert not other_held.equals(held)


def test_streamed_split_of_bad_data_leaves_no_files(tmp_path, german_spec):
    bad = edited_copy(GERMAN_CSV, tmp_path / "bad.csv", set_cell(700, "age_in_years", "forty"))
    source = training_data.FileSource(str(bad), chunk_rows=100)
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"row 701 .*'forty'"):
        training_data.split_stream(source, german_spec, 0.2, 1, out / "train.parquet", out / "eval.parquet")
    assert list(out.iterdir()) == []
    with pytest.raises(DataError, match=r"eval_fraction must be in \[0.05, 0.5\]"):
        training_data.split_stream(source, german_spec, 0.9, 1, out / "train.parquet", out / "eval.parquet")
