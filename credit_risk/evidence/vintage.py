"""Out-of-time and vintage back-testing of a PD model: how its PDs held up, cohort by cohort.

A validator asks whether a model estimated on earlier originations still ranks and calibrates the
later ones. Given each loan's origination date, this module

- cuts the dates into **cohorts** (``month`` ``2024-03``, ``quarter`` ``2024Q1``, ``year`` ``2024``);
- tabulates per cohort the loans, the observed defaults and default rate, the mean PD the model
  gave them, the AUC within the cohort (when it has both outcomes) and the one-sided **Jeffreys
  test** p-value (``rating.jeffreys_p_value``: small = the PDs under-estimate the defaults), and
  flags the cohorts below ``alpha``;
- splits a dataset **out of time**: the latest ``holdout_fraction`` of origination dates is held
  out, every training date strictly before every held-out one (``DateCounts``: chunk by chunk,
  memory by distinct days) - the pipeline's split when the feature spec names an
  ``origination_date``, and evaluation then tabulates the held-out cohorts.

``default_curves`` gives the **cumulative default curves** per cohort - the share of its loans
defaulted by each month after origination - from each loan's months to default (no model needed;
``credit-risk default-curves``).

Cohorts are accumulated chunk by chunk (``VintageAccumulator``), so scoring a portfolio of any
size keeps one chunk in memory plus the per-cohort scores the AUC needs (a float32 and a byte per
row). ``credit-risk backtest`` scores files with an exported model and writes the table as JSON,
Markdown and a picture (observed rate against mean PD per cohort).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from credit_risk.errors import ConfigError, DataError
from credit_risk.evidence import metrics
from credit_risk.spec import rating, values

PERIODS = ("month", "quarter", "year")


def parse_dates(column: pd.Series, first_row: int = 1, where: str = "") -> pd.Series:
    """ISO dates (``YYYY-MM-DD``; Parquet/database dates and timestamps as they are) as datetime64,
    or one DataError naming up to three bad rows and their values. A missing date is bad: a loan
    without an origination date belongs to no cohort."""
    parsed = values.to_dates(column)
    bad = parsed.isna().to_numpy()
    if bad.any():
        message = values.bad_values("column", column, bad, first_row, None, "a date (YYYY-MM-DD)")
        raise DataError(f"{where}: {message}" if where else message)
    return parsed


def cohort_labels(dates: pd.Series, period: str) -> np.ndarray:
    """The cohort of each parsed date: ``2024-03`` (month), ``2024Q1`` (quarter), ``2024`` (year)."""
    if period not in PERIODS:
        raise ConfigError(f"cohort period must be one of {PERIODS}, got {period!r}")
    code = {"month": "M", "quarter": "Q", "year": "Y"}[period]
    return dates.dt.to_period(code).astype(str).to_numpy()


@dataclass(frozen=True)
class CohortRow:
    cohort: str
    n: int
    defaults: int
    observed_rate: float
    mean_pd: float
    auc: float | None  # None: the cohort has one outcome only
    jeffreys_p: float  # one-sided: small = PDs too low for the defaults observed
    flagged: bool


@dataclass
class VintageReport:
    date_column: str
    period: str
    alpha: float
    cohorts: list[CohortRow]
    out_of_time_cutoff: str | None = None  # first held-out date, when the data was split by time
    model_version: str = ""

    @property
    def flagged(self) -> list[str]:
        return [c.cohort for c in self.cohorts if c.flagged]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "flagged": self.flagged}

    def markdown(self) -> str:
        lines = [
            f"# Vintage back-test by origination {self.period} (`{self.date_column}`)",
            "",
            f"Model `{self.model_version or '-'}`; Jeffreys test at alpha {self.alpha:g}: a flagged "
            "cohort defaulted more than its PDs allow.",
            "",
            "| cohort | loans | defaults | observed rate | mean PD | AUC | Jeffreys p | flagged |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for c in self.cohorts:
            auc = "-" if c.auc is None else f"{c.auc:.3f}"
            lines.append(
                f"| {c.cohort} | {c.n} | {c.defaults} | {c.observed_rate:.4f} | {c.mean_pd:.4f} | {auc} "
                f"| {c.jeffreys_p:.4f} | {'**yes**' if c.flagged else 'no'} |"
            )
        return "\n".join(lines) + "\n"


@dataclass
class VintageAccumulator:
    """Per-cohort labels and PDs, added chunk by chunk."""

    date_column: str
    period: str = "quarter"
    _labels: dict[str, list[np.ndarray]] = field(default_factory=dict)
    _pds: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.period not in PERIODS:
            raise ConfigError(f"cohort period must be one of {PERIODS}, got {self.period!r}")

    def add(self, cohorts: np.ndarray, labels: np.ndarray, pds: np.ndarray) -> None:
        if not len(cohorts) == len(labels) == len(pds):
            raise ValueError("cohorts, labels and PDs must have one entry per row")
        for name in np.unique(cohorts):
            rows = cohorts == name
            self._labels.setdefault(str(name), []).append(labels[rows].astype(np.int8))
            self._pds.setdefault(str(name), []).append(pds[rows].astype(np.float32))

    def report(
        self, alpha: float = 0.05, model_version: str = "", cutoff: str | None = None
    ) -> VintageReport:
        if not 0 < alpha < 1:
            raise ConfigError(f"alpha must be in (0, 1), got {alpha}")
        rows = []
        for name in sorted(self._labels):
            y = np.concatenate(self._labels[name]).astype(np.int64)
            p = np.concatenate(self._pds[name]).astype(np.float64)
            defaults, n = int(y.sum()), len(y)
            mean_pd = float(p.mean())
            auc = metrics.roc_auc_score(y, p) if 0 < defaults < n else None
            jeffreys = rating.jeffreys_p_value(defaults, n, mean_pd)
            rows.append(CohortRow(name, n, defaults, defaults / n, mean_pd, auc, jeffreys, jeffreys < alpha))
        return VintageReport(self.date_column, self.period, alpha, rows, cutoff, model_version)


def vintage_report(
    dates: pd.Series, labels: np.ndarray, pds: np.ndarray, period: str = "quarter", alpha: float = 0.05
) -> VintageReport:
    """The whole table for rows in memory (``VintageAccumulator`` for chunks)."""
    acc = VintageAccumulator(str(dates.name), period)
    acc.add(cohort_labels(parse_dates(dates), period), np.asarray(labels), np.asarray(pds))
    return acc.report(alpha)


@dataclass
class DateCounts:
    """Rows per origination day, added chunk by chunk: enough to place the out-of-time cutoff over
    any number of rows (memory grows with the distinct days, not the rows)."""

    column: str
    days: dict[np.datetime64, int] = field(default_factory=dict)

    def add(self, dates: pd.Series) -> None:
        """``dates``: parsed (datetime64) or ISO text, every row a date."""
        parsed = dates if pd.api.types.is_datetime64_any_dtype(dates) else parse_dates(dates)
        days, counts = np.unique(parsed.to_numpy().astype("datetime64[D]"), return_counts=True)
        for day, n in zip(days, counts, strict=True):
            self.days[day] = self.days.get(day, 0) + int(n)

    def cutoff(self, holdout_fraction: float) -> str:
        """The first held-out date (``YYYY-MM-DD``): the day of the row at which
        ``holdout_fraction`` of the rows, in date order, remain. Rows on or after it are held
        out, so every training date precedes every held-out one and one day's loans stay on one
        side."""
        if not 0 < holdout_fraction < 1:
            raise ConfigError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
        days = sorted(self.days)
        cumulative = np.cumsum([self.days[d] for d in days])
        total = int(cumulative[-1]) if days else 0
        first_held = min(total - 1, int(np.floor(total * (1 - holdout_fraction))))  # in date order
        index = int(np.searchsorted(cumulative, first_held, side="right"))
        if total == 0 or index == 0:
            raise DataError(
                f"column {self.column!r}: cannot hold out {holdout_fraction:.0%} of the rows by date - "
                f"{len(days)} distinct date(s)"
            )
        return str(days[index])


def out_of_time_split(dates: pd.Series, holdout_fraction: float) -> tuple[np.ndarray, str]:
    """(held-out mask, first held-out date) for rows in memory (``DateCounts`` for chunks)."""
    parsed = parse_dates(dates)
    counts = DateCounts(str(dates.name))
    counts.add(parsed)
    cutoff = counts.cutoff(holdout_fraction)
    return (parsed >= pd.Timestamp(cutoff)).to_numpy(), cutoff


@dataclass
class DefaultCurves:
    """Cumulative default curves: per origination cohort, the share of its loans that had defaulted
    by each month after origination (1 .. ``horizon``)."""

    date_column: str
    months_column: str
    period: str
    horizon: int
    cohorts: list[str]
    loans: list[int]
    cumulative: list[list[float]]  # [cohort][month - 1]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        shown = [m for m in (1, 3, 6, 9, 12, 18, 24, 36) if m <= self.horizon] or [self.horizon]
        lines = [
            f"# Cumulative default rate by origination {self.period} (`{self.date_column}`)",
            "",
            f"Share of each cohort's loans defaulted by month after origination (`{self.months_column}`).",
            "",
            "| cohort | loans | " + " | ".join(f"month {m}" for m in shown) + " |",
            "|---|---|" + "---|" * len(shown),
        ]
        for name, n, curve in zip(self.cohorts, self.loans, self.cumulative, strict=True):
            lines.append(f"| {name} | {n} | " + " | ".join(f"{curve[m - 1]:.4f}" for m in shown) + " |")
        return "\n".join(lines) + "\n"


@dataclass
class CurveAccumulator:
    """Loans and defaults by (cohort, month after origination), added chunk by chunk: memory grows
    with the cohorts, not the loans."""

    date_column: str
    months_column: str
    period: str = "quarter"
    horizon: int = 12
    _loans: dict[str, int] = field(default_factory=dict)
    _defaults: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.period not in PERIODS:
            raise ConfigError(f"cohort period must be one of {PERIODS}, got {self.period!r}")
        if not 1 <= self.horizon <= 120:
            raise ConfigError(f"horizon must be 1-120 months, got {self.horizon}")

    def add(self, dates: pd.Series, months: pd.Series, first_row: int = 1, where: str = "") -> None:
        """``months``: months from origination to the default, missing = no default; a value that is
        not a whole number of at least 1 fails naming its rows."""
        cohorts = cohort_labels(parse_dates(dates, first_row, where), self.period)
        number = pd.to_numeric(months, errors="coerce")
        bad = (months.notna() & ~(number.notna() & (number >= 1) & (number == np.floor(number)))).to_numpy()
        if bad.any():
            message = values.bad_values(
                "column", months, bad, first_row, None, "a whole number of months >= 1 (or empty: no default)"
            )
            raise DataError(f"{where}: {message}" if where else message)
        month = number.fillna(0).to_numpy(dtype=np.int64)
        for name in np.unique(cohorts):
            rows = cohorts == name
            key = str(name)
            self._loans[key] = self._loans.get(key, 0) + int(rows.sum())
            hits = month[rows]
            hits = hits[(hits >= 1) & (hits <= self.horizon)]
            counts = np.bincount(hits - 1, minlength=self.horizon)[: self.horizon]
            self._defaults[key] = self._defaults.get(key, np.zeros(self.horizon, np.int64)) + counts

    def curves(self) -> DefaultCurves:
        names = sorted(self._loans)
        cumulative = [(np.cumsum(self._defaults[n]) / self._loans[n]).round(6).tolist() for n in names]
        return DefaultCurves(self.date_column, self.months_column, self.period, self.horizon, names,
                             [self._loans[n] for n in names], cumulative)  # fmt: skip


def default_curves(
    dates: pd.Series, months: pd.Series, period: str = "quarter", horizon: int = 12
) -> DefaultCurves:
    """The curves of rows in memory (``CurveAccumulator`` for chunks)."""
    acc = CurveAccumulator(str(dates.name), str(months.name), period, horizon)
    acc.add(dates, months)
    return acc.curves()


def curves_from_files(
    data_uri: str,
    date_column: str,
    months_column: str,
    period: str = "quarter",
    horizon: int = 12,
    chunk_rows: int = 131_072,
) -> DefaultCurves:
    """The curves of every row of the CSV/Parquet file(s) at ``data_uri`` (local, gs://, s3://),
    one chunk in memory."""
    from credit_risk import storage
    from credit_risk.dataset import data_stats

    acc = CurveAccumulator(date_column, months_column, period, horizon)
    files = storage.list_files(data_uri)
    for chunk in data_stats.file_chunks(files, [date_column, months_column], chunk_rows, "the curves need"):
        acc.add(chunk.frame[date_column], chunk.frame[months_column], chunk.first_row, chunk.uri)
    return acc.curves()


def curves_figure(curves: DefaultCurves) -> Any:
    """One line per cohort: cumulative default rate against months after origination."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    months = np.arange(1, curves.horizon + 1)
    colors = matplotlib.colormaps["viridis"](np.linspace(0, 1, max(len(curves.cohorts), 2)))
    for i, (name, curve) in enumerate(zip(curves.cohorts, curves.cumulative, strict=True)):
        ax.plot(months, curve, color=colors[i], label=name, linewidth=1.2)
    ax.set(xlabel="months after origination", ylabel="cumulative default rate",
           title=f"Cumulative default rate by origination {curves.period}")  # fmt: skip
    if len(curves.cohorts) <= 12:
        ax.legend(fontsize=7, ncol=2)
    ax.set_ylim(0, None)
    fig.tight_layout()
    return fig


def write_curves(curves: DefaultCurves, out_dir: str | Path) -> dict[str, Path]:
    """``default_curves.json`` / ``.md`` / ``.png`` in ``out_dir``, all three or none (as ``write``)."""
    import matplotlib.pyplot as plt

    def draw(path: Path) -> None:
        fig = curves_figure(curves)
        fig.savefig(path)
        plt.close(fig)

    return _write_set(out_dir, "default_curves", curves.to_dict(), curves.markdown(), draw)


def _write_set(
    out_dir: str | Path, stem: str, record: dict[str, Any], markdown: str, draw: Any
) -> dict[str, Path]:
    """``<stem>.json``, ``<stem>.md`` and ``<stem>.png`` (``draw(path)``) in ``out_dir``: written to a
    staging directory inside it first and moved in only when every one is complete, so a failure
    (a full disk, a plotting error) leaves no partial or mismatched set behind."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = {"json": f"{stem}.json", "markdown": f"{stem}.md", "plot": f"{stem}.png"}
    with tempfile.TemporaryDirectory(prefix=f".{stem}-", dir=out) as staging:
        stage = Path(staging)
        (stage / names["json"]).write_text(json.dumps(record, indent=2) + "\n")
        (stage / names["markdown"]).write_text(markdown)
        draw(stage / names["plot"])
        for name in names.values():
            os.replace(stage / name, out / name)
    return {kind: out / name for kind, name in names.items()}


def figure(report: VintageReport) -> Any:
    """Observed default rate and mean PD per cohort (lines), loans per cohort (bars); flagged
    cohorts marked. A matplotlib figure (``plot`` saves one; the evaluation report embeds it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [c.cohort for c in report.cohorts]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(names) + 2), 4), dpi=110)
    bars = ax.twinx()
    bars.bar(x, [c.n for c in report.cohorts], color="#dddddd", zorder=0)
    bars.set_ylabel("loans")
    ax.set_zorder(bars.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.plot(
        x, [c.observed_rate for c in report.cohorts], "o-", color="#c0392b", label="observed default rate"
    )
    ax.plot(x, [c.mean_pd for c in report.cohorts], "s--", color="#2c3e50", label="mean PD")
    for i, c in enumerate(report.cohorts):
        if c.flagged:
            ax.annotate("under-estimated", (i, c.observed_rate), textcoords="offset points", xytext=(0, 8),
                        ha="center", color="#c0392b", fontsize=8)  # fmt: skip
    top = max([c.observed_rate for c in report.cohorts] + [c.mean_pd for c in report.cohorts] + [0.01])
    ax.set_ylim(0, top * 1.25)  # rates from 0, with room for the flags
    ax.set_xticks(x, names, rotation=45, ha="right")
    ax.set_ylabel("rate")
    ax.set_title(f"Vintage back-test by origination {report.period}")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def plot(report: VintageReport, path: str | Path) -> Path:
    """``figure(report)`` saved as a PNG at ``path``."""
    import matplotlib.pyplot as plt

    fig = figure(report)
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out


def write(report: VintageReport, out_dir: str | Path) -> dict[str, Path]:
    """``vintage.json``, ``vintage.md`` and ``vintage.png`` in ``out_dir``, all three or none."""
    return _write_set(
        out_dir, "vintage", report.to_dict(), report.markdown(), lambda path: plot(report, path)
    )
