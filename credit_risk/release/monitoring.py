"""Population stability of a deployed model: PSI of the score and of every model input, plus TFDV drift.

PSI = sum over bins of (actual% - expected%) * ln(actual% / expected%), bands < 0.1 stable,
0.1-0.25 watch, > 0.25 act (the industry convention). Bins come from the baseline (the model's
training data): deciles for the score and numeric features (missing values get their own bin),
the baseline's categories plus "other" (unseen) and missing for categoricals.

Memory is bounded whatever the data size: the baseline is read once into a uniform sample of at
most ``baseline_sample_rows`` rows (bottom-k of random keys, merged chunk by chunk) - bins and
expected shares come from it, its scores from the model; the current data is only counted, chunk
by chunk, exactly. The current scores are read from a batch-scoring output (``pd`` column) when
given, else computed chunk by chunk. TFDV's own drift measures (Jensen-Shannon / L-infinity,
thresholds from the feature spec) are computed on the same two datasets.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from credit_risk import storage
from credit_risk.dataset import data_stats
from credit_risk.errors import ConfigError, DataError
from credit_risk.spec import values
from credit_risk.spec.feature_spec import FeatureSpec

log = logging.getLogger(__name__)

STABLE, WATCH, ACT = "stable", "watch", "act"
BAND_LIMITS = ((0.1, STABLE), (0.25, WATCH), (math.inf, ACT))
SCORE = "score"  # the PSI entry of the model's PD
RESULT_FILE, REPORT_FILE, VERDICT_FILE = "monitoring.json", "monitoring.html", "verdict.md"
PSI_FLOOR = 1e-4  # share given to an empty bin, so ln() stays finite
OTHER, MISSING = "<other>", "<missing>"


def band(value: float) -> str:
    for limit, name in BAND_LIMITS:
        if value < limit:
            return name
    return ACT


def worst(bands: Sequence[str]) -> str:
    order = [STABLE, WATCH, ACT]
    return max(bands, key=order.index) if bands else STABLE


def psi(expected: np.ndarray, actual: np.ndarray, floor: float = PSI_FLOOR) -> float:
    """PSI of two count (or share) vectors over the same bins."""
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    if e.shape != a.shape or e.sum() <= 0 or a.sum() <= 0:
        raise ValueError(f"PSI needs two non-empty count vectors of one shape, got {e.shape} and {a.shape}")
    e = np.maximum(e / e.sum(), floor)
    a = np.maximum(a / a.sum(), floor)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True)
class Bins:
    """How one column is bucketed: numeric ``edges`` (inner cut points) or ``categories``."""

    name: str
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def numeric(self) -> bool:
        return not self.categories

    def labels(self) -> list[str]:
        if self.numeric:
            bounds = ["-inf", *(f"{e:.4g}" for e in self.edges), "inf"]
            return [f"[{lo}, {hi})" for lo, hi in itertools.pairwise(bounds)] + [MISSING]
        return [*self.categories, OTHER, MISSING]

    def counts(self, values: Any) -> np.ndarray:
        """Counts per bin (last bin: missing) of ``values``."""
        if self.numeric:
            x = np.asarray(values, dtype=float)
            missing = np.isnan(x)
            index = np.searchsorted(np.asarray(self.edges), x[~missing], side="right")
            counts = np.bincount(index, minlength=len(self.edges) + 1).astype(float)
            return np.append(counts, missing.sum())
        series = pd.Series(values, dtype=object)
        missing = series.isna() | (series == "")
        lookup = {c: i for i, c in enumerate(self.categories)}
        codes = series[~missing].map(lookup).fillna(len(self.categories)).astype(int).to_numpy()
        counts = np.bincount(codes, minlength=len(self.categories) + 1).astype(float)
        return np.append(counts, missing.sum())


def numeric_bins(name: str, sample: Any, bins: int = 10) -> Bins:
    x = np.asarray(sample, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return Bins(name, edges=())
    edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1]))
    return Bins(name, edges=tuple(float(e) for e in edges))


def categorical_bins(name: str, sample: Any, max_categories: int = 50) -> Bins:
    series = pd.Series(sample, dtype=object)
    common = series[series.notna() & (series != "")].value_counts().index[:max_categories]
    return Bins(name, categories=tuple(sorted(str(c) for c in common)))


@dataclass
class MonitoringConfig:
    baseline_sample_rows: int = 200_000
    bins: int = 10
    chunk_rows: int = 131_072
    drift_threshold: float = 0.1  # TFDV default for features without a spec threshold
    seed: int = 0

    def __post_init__(self) -> None:
        if self.baseline_sample_rows < 100:
            raise ConfigError(f"baseline_sample_rows must be >= 100, got {self.baseline_sample_rows}")
        if not 2 <= self.bins <= 100:
            raise ConfigError(f"bins must be in [2, 100], got {self.bins}")


@dataclass
class MonitoringResult:
    verdict: str
    score_psi: float
    feature_psi: dict[str, float]
    bands: dict[str, str]
    tfdv_drift: dict[str, dict[str, Any]]
    baseline_rows_sampled: int
    current_rows: int
    model_version: str
    baseline_uri: str
    current_uri: str
    distributions: dict[str, dict[str, Any]] = field(default_factory=dict)  # per column: bins, shares
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        drifted = [k for k, v in self.tfdv_drift.items() if v["drifted"]]
        movers = sorted(self.feature_psi.items(), key=lambda kv: -kv[1])[:3]
        return (
            f"verdict {self.verdict.upper()}: score PSI {self.score_psi:.4f} ({self.bands[SCORE]}); "
            f"top features {', '.join(f'{k} {v:.3f}' for k, v in movers)}; "
            f"TFDV drift over threshold: {drifted or 'none'}"
        )


def _typed_chunks(uri: str, spec: FeatureSpec, chunk_rows: int) -> Iterator[pd.DataFrame]:
    columns = [f.name for f in spec.model_features]
    for chunk in data_stats.file_chunks(storage.list_files(uri), columns, chunk_rows, "the model needs"):
        yield values.typed(
            chunk.frame, spec, chunk.uri, chunk.first_row, chunk.line_offset, model_inputs_only=True
        )


def baseline_sample(uri: str, spec: FeatureSpec, config: MonitoringConfig) -> pd.DataFrame:
    """A uniform random sample of at most ``baseline_sample_rows`` rows of ``uri``, one chunk in memory."""
    rng = np.random.default_rng(config.seed)
    kept: pd.DataFrame | None = None
    for chunk in _typed_chunks(uri, spec, config.chunk_rows):
        keyed = chunk.assign(_key=rng.random(len(chunk)))
        both = keyed if kept is None else pd.concat([kept, keyed], ignore_index=True)
        kept = (
            both.nsmallest(config.baseline_sample_rows, "_key")
            if len(both) > config.baseline_sample_rows
            else both
        )
    if kept is None or kept.empty:
        raise DataError(f"{uri}: the baseline has no rows")
    return kept.drop(columns="_key").reset_index(drop=True)


def _score_chunks(scores_uri: str, chunk_rows: int) -> Iterator[np.ndarray]:
    for file in storage.list_files(scores_uri, suffixes=(".parquet",)):
        for batch in data_stats.raw_batches(file, columns=["pd"], batch_rows=chunk_rows):
            yield batch.column(0).to_numpy(zero_copy_only=False).astype(float)


def tfdv_drift(
    baseline_uri: str, current_uri: str, spec: FeatureSpec, threshold: float
) -> dict[str, dict[str, Any]]:
    """TFDV's drift measure per model feature (JS divergence / L-infinity) and whether it crosses
    the feature's threshold."""
    import tensorflow_data_validation as tfdv

    from credit_risk.dataset import validation

    baseline = data_stats.fast_statistics(baseline_uri, spec)
    current = data_stats.fast_statistics(current_uri, spec)
    schema = validation.schema_for_spec(baseline, spec)
    validation.apply_comparators(schema, spec, threshold)
    anomalies = tfdv.validate_statistics(current, schema, previous_statistics=baseline)
    out = {}
    for key, value in validation.drift_values(anomalies).items():
        name, kind = key.split(":")
        if kind == "drift" and name in {f.name for f in spec.model_features}:
            out[name] = {**value, "drifted": value["value"] > value["threshold"]}
    return out


def monitor(
    model_dir: str | Path,
    baseline_uri: str,
    current_uri: str,
    scores_uri: str = "",
    config: MonitoringConfig | None = None,
    with_tfdv: bool = True,
) -> MonitoringResult:
    """PSI of the score and every model input of ``current_uri`` against ``baseline_uri``."""
    from credit_risk.lineage import model_version_of
    from credit_risk.modeling.scoring import ExportedModel

    config = config or MonitoringConfig()
    start = time.perf_counter()
    model = ExportedModel(model_dir)
    spec = model.spec
    sample = baseline_sample(baseline_uri, spec, config)
    sample_scores = model.predict_frame(sample)
    bins = {SCORE: numeric_bins(SCORE, sample_scores, config.bins)}
    for f in spec.model_features:
        bins[f.name] = (numeric_bins if f.is_numeric else categorical_bins)(
            f.name, sample[f.name], config.bins
        )
    expected = {SCORE: bins[SCORE].counts(sample_scores)}
    expected.update({f.name: bins[f.name].counts(sample[f.name]) for f in spec.model_features})
    log.info(
        "monitoring: baseline sample of %d rows from %s (%.1fs)",
        len(sample),
        baseline_uri,
        time.perf_counter() - start,
    )

    actual = {name: np.zeros_like(counts) for name, counts in expected.items()}
    rows = 0
    for chunk in _typed_chunks(current_uri, spec, config.chunk_rows):
        for f in spec.model_features:
            actual[f.name] += bins[f.name].counts(chunk[f.name])
        if not scores_uri:
            actual[SCORE] += bins[SCORE].counts(model.predict_frame(chunk))
        rows += len(chunk)
        log.info(
            "monitoring: counted %d current rows (%.0f rows/s)", rows, rows / (time.perf_counter() - start)
        )
    if rows == 0:
        raise DataError(f"{current_uri}: the current data has no rows")
    if scores_uri:
        storage.require_published(scores_uri)  # never the scores of an interrupted run
        scored = 0
        for pds in _score_chunks(scores_uri, config.chunk_rows):
            actual[SCORE] += bins[SCORE].counts(pds)
            scored += len(pds)
        if scored != rows:
            raise DataError(
                f"{scores_uri} holds {scored} scores but {current_uri} has {rows} rows: not its scores"
            )

    values = {name: psi(expected[name], actual[name]) for name in expected}
    bands = {name: band(v) for name, v in values.items()}
    drift = tfdv_drift(baseline_uri, current_uri, spec, config.drift_threshold) if with_tfdv else {}
    verdict = worst(list(bands.values()) + [WATCH for v in drift.values() if v["drifted"]])
    distributions = {
        name: {
            "bins": bins[name].labels(),
            "baseline": _shares(expected[name]),
            "current": _shares(actual[name]),
        }
        for name in expected
    }
    result = MonitoringResult(
        verdict=verdict, score_psi=values[SCORE], feature_psi={k: v for k, v in values.items() if k != SCORE},
        bands=bands, tfdv_drift=drift, baseline_rows_sampled=len(sample), current_rows=rows,
        model_version=model_version_of(model_dir), baseline_uri=baseline_uri, current_uri=current_uri,
        distributions=distributions, seconds=round(time.perf_counter() - start, 2),
    )  # fmt: skip
    log.info("monitoring: %s", result.summary())
    return result


def _shares(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return [round(float(c / total), 6) if total else 0.0 for c in counts]
