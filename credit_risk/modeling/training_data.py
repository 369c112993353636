"""Training data as a stream of typed chunks: files (CSV/Parquet, local, gs:// or s3://, sharded) or a frame.

Training never needs the whole dataset in memory:
- ``analyze`` makes one bounded-memory pass that checks the data against the feature spec (before
  any training starts), counts rows and positives, fingerprints the content and collects what the
  model's preprocessing layers need (means/variances, a bounded sample for bucket boundaries,
  category counts) - the "analyze" half of tf.Transform, without a Beam dependency.
- ``batches`` streams shuffled fixed-size batches of model inputs for ``tf.data``.

A row goes to the validation split by a seeded hash of its position, so the split is the same on
every pass and on every worker, whatever the chunking. An in-memory frame is the same stream with
one chunk; the pipeline's small snapshots use a stratified split instead (``FrameSource``).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from credit_risk import storage
from credit_risk.dataset.data_stats import TypedTableWriter, text_frames
from credit_risk.errors import DataError
from credit_risk.lineage import content_hash, data_fingerprint
from credit_risk.spec.contract import MISSING_CATEGORY, frame_to_arrays
from credit_risk.spec.feature_spec import FeatureSpec
from credit_risk.spec.values import typed

log = logging.getLogger(__name__)

CHUNK_ROWS = 65_536  # rows read (and shuffled) at a time: memory is bounded by this, not the data
SAMPLE_CAP = 200_000  # values kept per numeric column for bucket boundaries (uniform reservoir)


ROW_KEY_FILE_STRIDE = 1 << 40  # row key = file index * stride + row number in that file


@dataclass(frozen=True)
class FileSource:
    """Sharded data files (CSV or Parquet, local, gs:// or s3://): a file, a directory/prefix or a glob."""

    uri: str
    chunk_rows: int = CHUNK_ROWS

    def files(self) -> list[str]:
        return storage.list_files(self.uri)

    def chunks(
        self, spec: FeatureSpec, files: list[tuple[int, str]] | None = None
    ) -> Iterator[tuple[int, pd.DataFrame]]:
        """(row key of the chunk's first row, typed chunk) for ``files`` ((index, uri) pairs of the
        sorted file list; default all). A row's key depends only on its file and position, never on
        which files a worker reads or in what order - so the validation split cannot move."""
        for index, uri in files if files is not None else list(enumerate(self.files())):
            row = 1
            for raw in text_frames(uri, self.chunk_rows):
                yield index * ROW_KEY_FILE_STRIDE + row, typed(raw, spec, uri, row)
                row += len(raw)


@dataclass(frozen=True)
class FrameSource:
    """An in-memory frame (already typed by ``data.load_dataset``) as a one-chunk stream."""

    frame: pd.DataFrame

    def chunks(
        self, spec: FeatureSpec, files: list[tuple[int, str]] | None = None
    ) -> Iterator[tuple[int, pd.DataFrame]]:
        if not self.frame.empty:
            yield 1, typed(self.frame, spec, "training frame", 1)


Source = FileSource | FrameSource


def validation_mask(first_key: int, n: int, fraction: float, seed: int) -> np.ndarray:
    """True for the rows with keys first_key..first_key+n-1 that belong to the validation split:
    a seeded hash of the row key (splitmix64 finaliser), so the split never depends on chunking,
    workers or pass."""
    if fraction <= 0:
        return np.zeros(n, dtype=bool)
    with np.errstate(over="ignore"):
        z = np.arange(first_key, first_key + n, dtype=np.uint64) + np.uint64(seed) * np.uint64(
            0x9E3779B97F4A7C15
        )
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z % np.uint64(1_000_000)) < np.uint64(round(fraction * 1_000_000))


HELD_OUT_SALT = 0x4E1D_0B7  # keeps the held-out hash independent of training's validation hash


def split_stream(
    source: FileSource,
    spec: FeatureSpec,
    eval_fraction: float,
    seed: int,
    train_path: str | Path,
    eval_path: str | Path,
    cutoff: str | None = None,
) -> tuple[int, int]:
    """Train / held-out split of every row of ``source`` in one bounded-memory pass, as typed
    Parquet files (``data_stats.TypedTableWriter``).

    A row is held out by a seeded hash of its position (``validation_mask``), so the split does not
    depend on chunking. Class shares match in expectation, not exactly as in the in-memory
    stratified split (at 1M rows a class's share in the held-out set has a standard deviation of
    ~0.1 pp). ``cutoff`` (``YYYY-MM-DD``, with the spec's ``origination_date``): out of time
    instead - the rows dated on or after it are held out. Both files are written beside their
    targets and renamed into place only when every row is written."""
    from credit_risk.dataset.data import check_eval_fraction

    check_eval_fraction(eval_fraction)
    if cutoff is not None and not spec.date_column:
        raise DataError(f"an out-of-time cutoff needs the spec's origination_date; {spec.name!r} has none")
    started = time.perf_counter()
    with (
        TypedTableWriter(train_path, spec) as train,
        TypedTableWriter(eval_path, spec) as held_out,
    ):
        for first_key, chunk in source.chunks(spec):
            if cutoff is not None:  # typed dates are YYYY-MM-DD text: they order as the dates do
                held = (chunk[str(spec.date_column)] >= cutoff).to_numpy()
            else:
                held = validation_mask(first_key, len(chunk), eval_fraction, seed ^ HELD_OUT_SALT)
            train.write(chunk[~held])
            held_out.write(chunk[held])
            rows = train.rows + held_out.rows
            log.info("split: %d rows (%.0f rows/s)", rows, rows / max(time.perf_counter() - started, 1e-9))
        train.commit()
        held_out.commit()
    return train.rows, held_out.rows


@dataclass
class NumericProfile:
    count: int = 0
    mean: float = 0.0
    m2: float = 0.0  # sum of squared deviations (Chan et al. parallel merge)
    seen: int = 0  # finite values offered to the reservoir
    sample: np.ndarray = field(default_factory=lambda: np.empty(0))

    @property
    def variance(self) -> float:
        return self.m2 / self.count if self.count else 0.0

    def add(self, values: np.ndarray, rng: np.random.Generator) -> None:
        values = values[np.isfinite(values)]
        n = len(values)
        if not n:
            return
        mean, m2 = float(values.mean()), float(((values - values.mean()) ** 2).sum())
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total
        # Reservoir sample (Algorithm R, vectorised per chunk): a uniform sample of <= SAMPLE_CAP values.
        room = max(0, SAMPLE_CAP - len(self.sample))
        self.sample = np.concatenate([self.sample, values[:room]])
        rest = values[room:]
        if len(rest):
            slots = rng.integers(0, self.seen + room + np.arange(1, len(rest) + 1))
            keep = slots < SAMPLE_CAP
            self.sample[slots[keep]] = rest[keep]
        self.seen += n


@dataclass
class DataProfile:
    """What one pass over the training rows learned; the model's preprocessing is built from it."""

    rows: int = 0
    positives: int = 0
    validation_rows: int = 0
    numeric: dict[str, NumericProfile] = field(default_factory=dict)
    categories: dict[str, Counter] = field(default_factory=dict)
    fingerprint: str = ""

    @property
    def fit_rows(self) -> int:
        return self.rows - self.validation_rows

    def vocabulary(self, name: str) -> list[str]:
        return sorted(set(self.categories[name]) - {MISSING_CATEGORY})


def analyze(
    source: Source, spec: FeatureSpec, validation_fraction: float = 0.0, seed: int = 0
) -> DataProfile:
    """One pass: check every row against the spec, profile the fit rows, fingerprint all rows.

    Raises DataError (before any training) for a missing column, a non-numeric value, a label
    that is not 0/1, zero rows, a single class, or a model input with no values at all.
    """
    rng = np.random.default_rng(seed)
    profile = DataProfile(
        numeric={f.name: NumericProfile() for f in spec.model_features if f.is_numeric},
        categories={f.name: Counter() for f in spec.model_features if not f.is_numeric},
    )
    digest = hashlib.sha256()
    for first_key, chunk in source.chunks(spec):
        digest.update(content_hash(chunk))
        val = validation_mask(first_key, len(chunk), validation_fraction, seed)
        fit = chunk[~val]
        profile.rows += len(chunk)
        profile.validation_rows += int(val.sum())
        profile.positives += int(fit[spec.label].sum())
        for name, p in profile.numeric.items():
            p.add(fit[name].to_numpy(dtype=np.float64), rng)
        for name, counts in profile.categories.items():
            counts.update(fit[name].dropna().tolist())
    where = getattr(source, "uri", "training frame")
    if profile.rows == 0:
        raise DataError(f"{where}: zero data rows; nothing to train on")
    if profile.positives in (0, profile.fit_rows):
        raise DataError(
            f"{where}: label {spec.label!r} has a single class in the {profile.fit_rows} training rows "
            f"({profile.positives} positives); a PD model needs both defaults and non-defaults"
        )
    empty = [n for n, p in profile.numeric.items() if p.count == 0]
    empty += [n for n, c in profile.categories.items() if not (set(c) - {MISSING_CATEGORY})]
    if empty:
        raise DataError(
            f"{where}: model input(s) {sorted(empty)} have no values (all null) in the training rows"
        )
    profile.fingerprint = data_fingerprint(profile.rows, digest)
    log.info(
        "analyzed %s: %d rows (%d fit, %d validation), %d positives in fit rows",
        where,
        profile.rows,
        profile.fit_rows,
        profile.validation_rows,
        profile.positives,
    )
    return profile


def batches(
    source: Source,
    spec: FeatureSpec,
    batch_size: int,
    *,
    split: str,
    validation_fraction: float,
    seed: int,
    epoch: int = 0,
    shard: tuple[int, int] = (0, 1),
    shuffle: bool = True,
) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
    """(inputs, labels [n, 1] float32) batches of ``split`` ("fit" or "validation") rows.

    Files are shuffled per epoch and rows within a chunk, seeded by (seed, epoch); with
    ``shard=(i, n)`` worker i reads files i, i+n, ... when there are at least n files, else every
    n-th batch - each worker sees a disjoint part of the data.
    """
    if split not in ("fit", "validation"):
        raise ValueError(f"split must be 'fit' or 'validation', got {split!r}")
    index, count = shard
    rng = np.random.default_rng([seed, epoch])
    files = None
    if isinstance(source, FileSource):
        files = list(enumerate(source.files()))
        if count > 1 and len(files) >= count:
            files, index, count = files[index::count], 0, 1
        if shuffle:
            files = [files[i] for i in rng.permutation(len(files))]
    pending: list[pd.DataFrame] = []
    pending_rows = 0
    batch_no = 0

    def emit(frame: pd.DataFrame):
        nonlocal batch_no
        arrays = frame_to_arrays(frame, spec)  # convert once per block, then slice (cheap views)
        labels = frame[spec.label].to_numpy(np.float32).reshape(-1, 1)
        for start in range(0, len(frame), batch_size):
            if batch_no % count == index:
                end = start + batch_size
                yield {k: v[start:end] for k, v in arrays.items()}, labels[start:end]
            batch_no += 1

    for first_key, chunk in source.chunks(spec, files):
        val = validation_mask(first_key, len(chunk), validation_fraction, seed)
        rows = chunk[val] if split == "validation" else chunk[~val]
        if shuffle:
            rows = rows.iloc[rng.permutation(len(rows))]
        pending.append(rows)
        pending_rows += len(rows)
        if pending_rows >= batch_size:
            ready = pd.concat(pending, ignore_index=True)
            whole = len(ready) - len(ready) % batch_size
            yield from emit(ready.iloc[:whole])
            pending, pending_rows = [ready.iloc[whole:]], len(ready) - whole
    if pending_rows:
        yield from emit(pd.concat(pending, ignore_index=True))
