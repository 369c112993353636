"""Synthetic data shaped like a bundled dataset, at any size, for benchmarks.

Rows are drawn with replacement from the real data (so the joint distribution, the nulls and the
label relationship are the real ones) and every numeric value is jittered by a little
multiplicative noise (so rows are not exact copies). Same columns, same schema, same feature spec.
Generated in bounded chunks: 10M rows never sit in memory at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from credit_risk.dataset import data
from credit_risk.spec.feature_spec import FeatureSpec

log = logging.getLogger(__name__)

JITTER = 0.05  # relative noise on numerics


def chunks(
    reference: pd.DataFrame, spec: FeatureSpec, rows: int, seed: int = 0, chunk_rows: int = 250_000
) -> Iterator[pd.DataFrame]:
    """``rows`` synthetic rows like ``reference`` (a frame from ``data.load_dataset``), in chunks.

    Numerics keep their spec range ([min, max]) and integer-ness; the label is the drawn row's.
    """
    rng = np.random.default_rng(seed)
    produced = 0
    while produced < rows:
        n = min(chunk_rows, rows - produced)
        out = reference.iloc[rng.integers(0, len(reference), n)].reset_index(drop=True)
        for f in spec.features:
            if not f.is_numeric:
                continue
            values = out[f.name].to_numpy(dtype=np.float64)
            noisy = values * (1 + rng.normal(0, JITTER, n))
            if np.all(np.nan_to_num(values) == np.round(np.nan_to_num(values))):
                noisy = np.round(noisy)
            lo = -np.inf if f.min is None else f.min
            hi = np.inf if f.max is None else f.max
            out[f.name] = np.clip(noisy, lo, hi)
        produced += n
        yield out


def write_parquet_shards(
    data_uri: str,
    spec: FeatureSpec,
    rows: int,
    out_dir: str | Path,
    rows_per_file: int = 250_000,
    seed: int = 0,
) -> list[Path]:
    """Write ``rows`` synthetic rows as ``part-00000.parquet`` ... into ``out_dir``; returns the files."""
    reference = data.load_dataset(data_uri, spec)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    files = []
    for i, chunk in enumerate(chunks(reference, spec, rows, seed=seed, chunk_rows=rows_per_file)):
        path = out / f"part-{i:05d}.parquet"
        chunk.to_parquet(path, index=False)
        files.append(path)
    log.info(
        "wrote %d synthetic %s rows in %d files in %.1fs -> %s",
        rows,
        spec.name,
        len(files),
        time.perf_counter() - start,
        out,
    )
    return files


def with_origination_dates(
    frame: pd.DataFrame,
    column: str = "origination_date",
    start: str = "2023-01-01",
    months: int = 24,
    seed: int = 0,
) -> pd.DataFrame:
    """``frame`` with an ISO origination date per row, uniform over ``months`` months from
    ``start`` (seeded): a dated dataset for the out-of-time / vintage back-test."""
    if column in frame.columns:
        raise ValueError(f"column {column!r} is already in the data")
    first = pd.Timestamp(start)
    days = (first + pd.DateOffset(months=months) - first).days
    offsets = np.random.default_rng(seed).integers(0, days, size=len(frame))
    dates = (first + pd.to_timedelta(offsets, unit="D")).strftime("%Y-%m-%d")
    return frame.assign(**{column: dates})
