"""Score a dataset of any size with an exported model, in bounded memory.

Reads CSV/Parquet (local, gs:// or s3://) chunk by chunk (``data_stats.raw_batches``: one chunk in
memory), types each chunk by the model's own feature spec (``values.typed``: a bad
value fails with its column, row and value), calls the SavedModel's serving signature (the same
graph KServe serves), and writes ``part-NNNNN.parquet`` with the pass-through id columns plus
``pd``, ``decision`` and ``model_version`` per row. Each part goes to the output as soon as it is
written (``storage.DirectoryWriter``: uploaded to gs:// or s3://, or moved into a staging directory beside
a local output) and the publish marker is written last: a failed run publishes nothing, and for a
object-store output local disk holds one part at a time. Logs rows/s and ETA.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from credit_risk import storage
from credit_risk.dataset import data_stats
from credit_risk.errors import ConfigError, DataError
from credit_risk.lineage import model_version_of
from credit_risk.spec import contract, values

log = logging.getLogger(__name__)

SUMMARY_FILE = "scoring.json"
ROW_COLUMN = "row"  # 1-based position in the input, when no id column is passed through


@dataclass(frozen=True)
class ScoringConfig:
    threshold: float = contract.DEFAULT_OPERATING_THRESHOLD  # decline when PD >= threshold
    id_columns: tuple[str, ...] = ()  # copied to the output beside each row's PD
    chunk_rows: int = 131_072  # rows read, typed and written at a time: the unit of memory
    batch_size: int = 8192  # rows per signature call
    log_every_seconds: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 1:
            raise ConfigError(f"threshold must be in (0, 1), got {self.threshold!r}")
        if self.chunk_rows < 1 or self.batch_size < 1:
            raise ConfigError(
                f"chunk_rows and batch_size must be >= 1, got {self.chunk_rows}, {self.batch_size}"
            )


@dataclass(frozen=True)
class ScoringResult:
    output_uri: str
    rows: int
    files: list[str]
    model_version: str
    threshold: float
    seconds: float
    rows_per_second: float
    mean_pd: float
    decline_rate: float
    inputs: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _estimated_rows(files: Sequence[str]) -> int | None:
    """Rows in ``files``: exact for Parquet (footer), estimated for CSV from the first 64 KiB."""
    total = 0.0
    for uri in files:
        if data_stats.is_parquet(uri):
            with storage.open_read(uri) as stream:
                total += data_stats.parquet_file(stream, uri).metadata.num_rows
            continue
        with storage.open_read(uri) as stream:
            head = stream.read(65_536)
            size = stream.seek(0, 2)
        lines = head.count(b"\n")
        if lines < 2:
            return None
        total += max(size / (len(head) / lines) - 1, 0)
    return int(total)


class _Progress:
    def __init__(self, expected: int | None, every: float) -> None:
        self.expected, self.every = expected, every
        self.started = self.last = time.perf_counter()

    def update(self, rows: int, final: bool = False) -> None:
        now = time.perf_counter()
        if not final and now - self.last < self.every:
            return
        self.last = now
        rate = rows / max(now - self.started, 1e-9)
        if self.expected and not final:
            left = max(self.expected - rows, 0)
            share = min(rows / self.expected, 1.0)
            log.info(
                "scoring: %d rows (%.0f%%), %.0f rows/s, ETA %.0fs", rows, 100 * share, rate, left / rate
            )
        else:
            log.info("scoring: %d rows, %.0f rows/s%s", rows, rate, " - done" if final else "")


def score(
    model_dir: str | Path, data_uri: str, output_uri: str, config: ScoringConfig | None = None
) -> ScoringResult:
    """Score every row of ``data_uri`` (file, directory, glob; CSV/Parquet; local, gs:// or s3://) and
    publish the scores at ``output_uri`` (a directory; local, gs:// or s3://)."""
    from credit_risk.modeling.scoring import ExportedModel

    config = config or ScoringConfig()
    model = ExportedModel(model_dir)
    spec = model.spec
    version = model_version_of(model_dir)
    files = storage.list_files(data_uri)
    inputs = [f.name for f in spec.model_features]
    clash = [c for c in config.id_columns if c in (*inputs, "pd", "decision", "model_version")]
    if clash:
        raise ConfigError(f"id column(s) {clash} clash with model inputs or output columns")
    wanted = list(dict.fromkeys([*inputs, *config.id_columns]))
    log.info("scoring %d file(s) at %s with model %s (%s), threshold %.3f -> %s",
             len(files), data_uri, version, model_dir, config.threshold, output_uri)  # fmt: skip
    progress = _Progress(_estimated_rows(files), config.log_every_seconds)
    rows, declines, pd_sum = 0, 0, 0.0
    parts: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="credit-risk-scores-") as staging,
        storage.DirectoryWriter(output_uri) as published,
    ):  # each part leaves local disk at once; the marker only when all are scored
        needed_by = "the model needs (or named as id columns)"
        for chunk in data_stats.file_chunks(files, wanted, config.chunk_rows, needed_by):
            raw = chunk.frame
            typed = values.typed(
                raw, spec, chunk.uri, chunk.first_row, chunk.line_offset, model_inputs_only=True
            )
            pds = model.predict_frame(typed, batch_size=config.batch_size)
            out: dict[str, Any] = (
                {c: raw[c].to_numpy() for c in config.id_columns}
                if config.id_columns
                else {ROW_COLUMN: np.arange(rows + 1, rows + len(raw) + 1)}
            )
            declined = pds >= config.threshold
            out.update(
                {
                    "pd": pds.astype(np.float64),
                    "decision": np.where(declined, contract.DECLINE, contract.APPROVE),
                    "model_version": version,
                }
            )
            name = f"part-{len(parts):05d}.parquet"
            pd.DataFrame(out).to_parquet(Path(staging) / name, index=False)
            published.add(Path(staging) / name, name)
            parts.append(name)
            rows += len(raw)
            declines += int(declined.sum())
            pd_sum += float(pds.sum())
            progress.update(rows)
        if rows == 0:
            raise DataError(f"{data_uri}: no rows to score")
        seconds = time.perf_counter() - progress.started
        result = ScoringResult(
            output_uri=output_uri, rows=rows, files=parts, model_version=version, threshold=config.threshold,
            seconds=round(seconds, 3), rows_per_second=round(rows / seconds, 1), mean_pd=pd_sum / rows,
            decline_rate=declines / rows, inputs=files,
        )  # fmt: skip
        (Path(staging) / SUMMARY_FILE).write_text(json.dumps(result.to_dict(), indent=2))
        published.add(Path(staging) / SUMMARY_FILE, SUMMARY_FILE)
        published.commit()
    progress.update(rows, final=True)
    log.info(
        "scored %d rows in %.1fs (%.0f rows/s), mean PD %.4f, decline rate %.3f -> %s",
        rows, seconds, result.rows_per_second, result.mean_pd, result.decline_rate, output_uri,
    )  # fmt: skip
    return result


def backtest(
    model_dir: str | Path,
    data_uri: str,
    date_column: str,
    period: str = "quarter",
    alpha: float = 0.05,
    chunk_rows: int = 131_072,
) -> Any:
    """Score the labelled rows of ``data_uri`` with the model and tabulate how its PDs held up by
    origination cohort of ``date_column`` (``vintage.VintageReport``), one chunk in memory."""
    from credit_risk.evidence import vintage
    from credit_risk.modeling.scoring import ExportedModel

    model = ExportedModel(model_dir)
    spec = model.spec
    files = storage.list_files(data_uri)
    inputs = [f.name for f in spec.model_features]
    if date_column in (*inputs, spec.label):
        raise ConfigError(
            f"date column {date_column!r} is a model input or the label, not an origination date"
        )
    wanted = list(dict.fromkeys([*spec.columns, date_column]))
    acc = vintage.VintageAccumulator(date_column, period)
    progress = _Progress(_estimated_rows(files), 10.0)
    rows = 0
    for chunk in data_stats.file_chunks(files, wanted, chunk_rows, "the back-test needs"):
        raw = chunk.frame
        typed = values.typed(raw, spec, chunk.uri, chunk.first_row, chunk.line_offset)
        dates = vintage.parse_dates(raw[date_column], chunk.first_row, chunk.uri)
        pds = model.predict_frame(typed)
        acc.add(vintage.cohort_labels(dates, period), typed[spec.label].to_numpy(), pds)
        rows += len(raw)
        progress.update(rows)
    if rows == 0:
        raise DataError(f"{data_uri}: no rows to back-test")
    progress.update(rows, final=True)
    return acc.report(alpha, model_version_of(model_dir))
