"""Read a dataset as the feature spec describes it, with errors that name column, row and value.

Rows are numbered from 1 for the first data row; ``file line`` is that number + 1 (the header).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from credit_risk.dataset import data_stats
from credit_risk.errors import DataError
from credit_risk.spec import values
from credit_risk.spec.feature_spec import Feature, FeatureSpec

log = logging.getLogger(__name__)

READ_CHUNK_ROWS = 65_536  # rows per chunk while a whole file is read
MAX_EXAMPLES = 3
MAX_DUPLICATE_FRACTION = 0.01  # a few exact repeats happen in real data; more means a broken extract


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset, precise enough to find and fix."""

    column: str
    kind: str
    message: str


def read_raw(uri: str) -> pd.DataFrame:
    """A whole file through the package's one chunked reader (``data_stats.text_frames``): CSV
    cells as text (missing = NaN, nothing silently coerced), Parquet cells as typed."""
    frames = list(data_stats.text_frames(uri, READ_CHUNK_ROWS))
    if not frames:  # a header and no row: the columns, for the checks to report "no rows"
        return pd.DataFrame(columns=data_stats.columns_of(uri), dtype=object)
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _where(rows: list[int], values: list[str] | None = None, total: int | None = None) -> str:
    shown = rows[:MAX_EXAMPLES]
    parts = []
    for i, r in enumerate(shown):
        v = f" value {values[i]!r}" if values is not None else ""
        parts.append(f"row {r} (file line {r + 1}){v}")
    total = len(rows) if total is None else total
    more = f" and {total - len(shown)} more" if total > len(shown) else ""
    return ", ".join(parts) + more


@dataclass
class _Finding:
    """Where one kind of problem occurred in one column: first examples and the count."""

    rows: list[int]
    values: list[str] | None
    count: int = 0

    def add(self, rows: list[int], values: list[str] | None, count: int) -> None:
        room = MAX_EXAMPLES - len(self.rows)
        self.rows += rows[:room]
        if self.values is not None and values is not None:
            self.values += values[:room]
        self.count += count

    def where(self) -> str:
        return _where(self.rows, self.values, self.count)


def _text_batch(frame: pd.DataFrame) -> Any:
    """A raw (all-text) frame as a pyarrow RecordBatch of strings (missing = null)."""
    import pyarrow as pa

    arrays = [
        pa.array([None if pd.isna(v) else str(v) for v in frame[c]], pa.string())
        if frame[c].dtype != object
        else pa.array(frame[c].to_numpy(), pa.string(), from_pandas=True)
        for c in frame.columns
    ]
    return pa.RecordBatch.from_arrays(arrays, names=[str(c) for c in frame.columns])


MIN_POSITIVES = 20  # fewer defaults than this cannot train or evaluate a PD model
MAX_TRACKED_CATEGORIES = 64  # a categorical with more values is not checked for label leakage


class DataChecks:
    """The spec's checks over a stream of raw (all-text) chunks; the same problems, with the same
    messages, as one pass over the whole table. Memory: counters, a few examples per problem and
    one 8-byte hash per row (for the duplicate check)."""

    def __init__(
        self,
        spec: FeatureSpec,
        max_duplicate_fraction: float = MAX_DUPLICATE_FRACTION,
        min_positives: int = MIN_POSITIVES,
    ):
        self.spec = spec
        self.max_duplicate_fraction = max_duplicate_fraction
        self.min_positives = min_positives
        self.columns: list[str] | None = None
        self.rows = 0
        self.findings: dict[tuple[str, str], _Finding] = {}
        self.non_null = {f.name: 0 for f in spec.features}
        self.label_counts: dict[str, int] = {}
        self.row_hashes: list[np.ndarray[Any, Any]] = []
        # label leakage: rows where a feature equals the label; (value, label) pairs of categoricals
        self.equal_to_label = {f.name: 0 for f in spec.features}
        self.pairs: dict[str, set[tuple[str, str]] | None] = {
            f.name: set() for f in spec.features if not f.is_numeric
        }

    def _found(
        self, column: str, kind: str, mask: np.ndarray[Any, Any], first_row: int, values: Any | None
    ) -> None:
        """``mask``: the chunk's rows with the problem; ``values``: the column (Arrow), for examples."""
        rows = [int(i) + first_row for i in np.flatnonzero(mask)[:MAX_EXAMPLES]]
        shown = None
        if values is not None:
            import pyarrow as pa

            shown = [str(v) for v in values.filter(pa.array(mask)).slice(0, MAX_EXAMPLES).to_pylist()]
        finding = self.findings.setdefault((column, kind), _Finding([], [] if values is not None else None))
        finding.add(rows, shown, int(mask.sum()))

    def add(self, raw: Any) -> None:
        """One chunk of raw rows, every cell text: a pandas frame, or a pyarrow RecordBatch (how
        validation streams a file: the checks run on Arrow arrays, pandas only hashes the rows)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        frame = raw if isinstance(raw, pd.DataFrame) else None
        batch = _text_batch(raw) if frame is not None else raw
        names = list(batch.schema.names)
        if self.columns is None:
            self.columns = names
        first_row, n = self.rows + 1, batch.num_rows
        self.rows += n
        present = [c for c in names if c in self.spec.columns] or names
        if frame is None:
            frame = pa.Table.from_batches([batch]).select(present).to_pandas()
        self.row_hashes.append(pd.util.hash_pandas_object(frame[present], index=False).to_numpy())
        label = batch.column(names.index(self.spec.label)) if self.spec.label in names else None
        for f in self.spec.features:
            if f.name not in names:
                continue
            col = batch.column(names.index(f.name))
            nulls = pc.is_null(col).to_numpy(zero_copy_only=False)
            self.non_null[f.name] += n - col.null_count
            if col.null_count and not f.nullable:
                self._found(f.name, "unexpected_null", nulls, first_row, None)
            if f.is_numeric:
                self._numeric(f, col, nulls, first_row)
            if label is not None:
                self._leakage(f, col, label)
        date = self.spec.date_column
        if date and date in names:
            col = batch.column(names.index(date))
            text = col if pa.types.is_string(col.type) else pc.cast(col, pa.string())
            bad = pc.is_null(values.dates(text)).to_numpy(zero_copy_only=False)  # missing or not YYYY-MM-DD
            if bad.any():
                self._found(date, "bad_date", bad, first_row, pc.fill_null(text, "<missing>"))
        if label is not None:
            valid = pc.fill_null(pc.is_in(label, value_set=pa.array(["0", "1"])), False)
            bad = ~valid.to_numpy(zero_copy_only=False)
            if bad.any():
                self._found(self.spec.label, "bad_label", bad, first_row, label)
            for entry in pc.value_counts(label.filter(valid)).to_pylist():
                value = str(entry["values"])
                self.label_counts[value] = self.label_counts.get(value, 0) + int(entry["counts"])

    def _numeric(self, f: Feature, col: Any, nulls: np.ndarray[Any, Any], first_row: int) -> None:
        import pyarrow.compute as pc

        parsed = values.numbers(col)  # the one typing rule: null where a cell is not a number
        bad = pc.is_null(parsed).to_numpy(zero_copy_only=False) & ~nulls
        if bad.any():
            self._found(f.name, "not_numeric", bad, first_row, col)
            return
        numbers = parsed.to_numpy(zero_copy_only=False)  # a missing cell is NaN here
        finite = np.isfinite(numbers) | nulls
        if not finite.all():
            self._found(f.name, "not_finite", ~finite, first_row, col)
        with np.errstate(invalid="ignore"):
            low = numbers < f.min if f.min is not None else np.zeros(len(numbers), dtype=bool)
            high = numbers > f.max if f.max is not None else np.zeros(len(numbers), dtype=bool)
        outside = (low | high) & ~nulls
        if outside.any():
            self._found(f.name, "out_of_range", outside, first_row, col)

    def _leakage(self, f: Feature, col: Any, label: Any) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        # equal as text, a missing cell equal to a missing label
        same = pc.or_(pc.fill_null(pc.equal(col, label), False), pc.and_(pc.is_null(col), pc.is_null(label)))
        self.equal_to_label[f.name] += int(pc.sum(same).as_py() or 0)
        pairs = self.pairs.get(f.name)
        if pairs is not None:  # the distinct (value, label) pairs, through dictionary codes
            values = pc.dictionary_encode(pc.fill_null(col, ""))
            labels = pc.dictionary_encode(pc.fill_null(label, "nan"))
            width = len(labels.dictionary)
            codes = pc.add(
                pc.multiply(pc.cast(values.indices, pa.int64()), width), pc.cast(labels.indices, pa.int64())
            )
            value_names, label_names = values.dictionary.to_pylist(), labels.dictionary.to_pylist()
            pairs.update(
                (value_names[c // width], label_names[c % width]) for c in pc.unique(codes).to_pylist()
            )
            if len(pairs) > 2 * MAX_TRACKED_CATEGORIES:
                self.pairs[f.name] = None

    def problems(self) -> list[Problem]:
        spec, problems = self.spec, []
        columns = self.columns or []
        missing = [c for c in spec.columns if c not in columns]
        for col in [c for c in columns if c not in spec.columns]:
            problems.append(
                Problem(
                    col,
                    "unexpected_column",
                    f"column {col!r} is not in feature spec {spec.name!r}; add it to the spec "
                    "(model_input: false to keep it out of the model) or drop it",
                )
            )
        for col in missing:
            problems.append(
                Problem(col, "missing_column", f"column {col!r} is missing; the file has columns {columns}")
            )
        if self.rows == 0:
            problems.append(Problem("*", "no_rows", "the dataset has a header but zero rows"))
            return problems
        problems += self._duplicates()
        for f in spec.features:
            if f.name in missing:
                continue
            if self.non_null[f.name] == 0:
                problems.append(Problem(f.name, "all_null", f"column {f.name!r} has no values at all"))
                continue
            if (found := self.findings.get((f.name, "unexpected_null"))) is not None:
                problems.append(
                    Problem(
                        f.name,
                        "unexpected_null",
                        f"column {f.name!r} is not nullable in the spec but is empty at {found.where()}",
                    )
                )
            if (found := self.findings.get((f.name, "not_numeric"))) is not None:
                problems.append(
                    Problem(
                        f.name,
                        "not_numeric",
                        f"column {f.name!r} is numeric in the spec but holds text at {found.where()}",
                    )
                )
            if (found := self.findings.get((f.name, "not_finite"))) is not None:
                problems.append(
                    Problem(f.name, "not_finite", f"column {f.name!r} holds inf values at {found.where()}")
                )
            if (found := self.findings.get((f.name, "out_of_range"))) is not None:
                lo = "-inf" if f.min is None else f"{f.min:g}"
                hi = "inf" if f.max is None else f"{f.max:g}"
                problems.append(
                    Problem(
                        f.name,
                        "out_of_range",
                        f"column {f.name!r} must be in [{lo}, {hi}] but is not at {found.where()}",
                    )
                )
            problems += self._leaks(f)
        if spec.label not in missing:
            problems += self._label_problems()
        if (found := self.findings.get((spec.date_column or "", "bad_date"))) is not None:
            problems.append(
                Problem(
                    str(spec.date_column),
                    "bad_date",
                    f"column {spec.date_column!r} is the origination date in the spec: every row needs a "
                    f"date (YYYY-MM-DD), but it is missing or not a date at {found.where()}",
                )
            )
        return problems

    def _duplicates(self) -> list[Problem]:
        hashes = np.concatenate(self.row_hashes)
        order = np.argsort(hashes, kind="stable")
        repeat = np.zeros(len(hashes), dtype=bool)
        repeat[order[1:]] = hashes[order[1:]] == hashes[order[:-1]]  # a later row equal to an earlier one
        count = int(repeat.sum())
        if count / len(hashes) <= self.max_duplicate_fraction:
            return []
        first = [int(i) + 1 for i in np.sort(np.flatnonzero(repeat))[:MAX_EXAMPLES]]
        return [
            Problem(
                "*",
                "duplicate_rows",
                f"{count} of {len(hashes)} rows ({count / len(hashes):.1%}) repeat an earlier row, above the "
                f"limit of {self.max_duplicate_fraction:.1%}; first at {_where(first, None, count)}",
            )
        ]

    def _leaks(self, f: Feature) -> list[Problem]:
        label = self.spec.label
        if self.equal_to_label[f.name] == self.rows:
            return [
                Problem(
                    f.name,
                    "label_leakage",
                    f"column {f.name!r} is identical to the label {label!r} in every row: "
                    "it leaks the outcome",
                )
            ]
        pairs = self.pairs.get(f.name)
        if pairs and len({v for v, _ in pairs}) == len(pairs) and len({y for _, y in pairs}) == 2:
            return [
                Problem(
                    f.name,
                    "label_leakage",
                    f"column {f.name!r} determines the label {label!r} exactly (each of its values occurs "
                    "with one label only): it leaks the outcome",
                )
            ]
        return []

    def _label_problems(self) -> list[Problem]:
        label = self.spec.label
        if (found := self.findings.get((label, "bad_label"))) is not None:
            return [
                Problem(label, "bad_label", f"label {label!r} must be 0 or 1 but is not at {found.where()}")
            ]
        if len(self.label_counts) < 2:
            only = next(iter(self.label_counts), "?")
            return [
                Problem(
                    label,
                    "single_class",
                    f"label {label!r} has a single class ({only}); "
                    "a PD model needs both defaults and non-defaults",
                )
            ]
        positives = self.label_counts.get("1", 0)
        if positives < self.min_positives:
            return [
                Problem(
                    label,
                    "too_few_positives",
                    f"label {label!r} has only {positives} positive (default) rows of {self.rows}; "
                    f"at least {self.min_positives} are needed to train and evaluate a PD model",
                )
            ]
        return []


def find_problems(
    raw: pd.DataFrame, spec: FeatureSpec, max_duplicate_fraction: float = MAX_DUPLICATE_FRACTION
) -> list[Problem]:
    """Check a raw (all-text) frame against the spec. Returns every problem, not just the first."""
    checks = DataChecks(spec, max_duplicate_fraction)
    checks.add(raw)
    return checks.problems()


def load_dataset(uri: str, spec: FeatureSpec) -> pd.DataFrame:
    """Read, check and type a dataset; raises DataError listing every problem."""
    raw = read_raw(uri)
    problems = find_problems(raw, spec)
    if problems:
        raise DataError(
            f"{uri} does not match feature spec {spec.name!r}:\n"
            + "\n".join(f"  - {p.message}" for p in problems)
        )
    log.info("read %d rows x %d columns from %s", len(raw), len(raw.columns), uri)
    return values.typed(raw, spec, uri, 1, None if data_stats.is_parquet(uri) else 1)


def check_eval_fraction(eval_fraction: float) -> None:
    if not 0.05 <= eval_fraction <= 0.5:
        raise DataError(f"eval_fraction must be in [0.05, 0.5], got {eval_fraction}")


def split_train_eval(
    df: pd.DataFrame, spec: FeatureSpec, eval_fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified, seeded split; the eval rows are never seen by training."""
    from sklearn.model_selection import train_test_split

    check_eval_fraction(eval_fraction)
    train, evaluation = train_test_split(
        df, test_size=eval_fraction, random_state=seed, stratify=df[spec.label]
    )
    return train.reset_index(drop=True), evaluation.reset_index(drop=True)


def instances(frame: pd.DataFrame, spec: FeatureSpec) -> list[dict[str, Any]]:
    """Rows as KServe V1 instances: model inputs only, JSON types, missing = null."""
    out = []
    for _, row in frame.iterrows():
        out.append(
            {
                f.name: (
                    None if pd.isna(row[f.name]) else float(row[f.name]) if f.is_numeric else str(row[f.name])
                )
                for f in spec.model_features
            }
        )
    return out


def sample_request(uri: str, spec: FeatureSpec, rows: int = 1, offset: int = 0) -> dict[str, Any]:
    """A KServe V1 body ``{"instances": [...]}`` from rows of a dataset."""
    frame = load_dataset(uri, spec).iloc[offset : offset + rows]
    if frame.empty:
        raise DataError(f"{uri} has no rows at offset {offset}")
    return {"instances": instances(frame, spec)}
