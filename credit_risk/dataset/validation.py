"""Data validation with TensorFlow Data Validation: statistics, schema, anomalies, drift and skew.

Three complementary checks, reported together as anomalies (each with its kind and severity):
- TFDV: the data's statistics validated against the **curated schema** of the dataset
  (``data/<name>.schema.pbtxt``: types, presence, value domains, ranges, label domain; reviewed
  and committed - ``credit-risk infer-schema`` writes a new one for review), and, when given,
  **drift** against the baseline statistics (the data the deployed model was trained on) and
  **skew** against a sample of serving requests (Jensen-Shannon divergence for numerics,
  L-infinity distance for categoricals, thresholds from the feature spec).
- Row-level spec checks (``data.DataChecks``, streamed): which row and value broke a column,
  duplicated rows, label leakage, too few positives - what column statistics cannot say.
- Dataset-level: a row count that collapsed against the baseline.

The statistics come from ``data_stats``: the in-process fast path (bounded memory, features split
across processes) or, with Beam pipeline options, a Beam runner (Dataflow, Flink, Spark).
A policy (``ValidationConfig.warn_only``) names anomaly kinds that are reported but do not fail.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from credit_risk import storage
from credit_risk.dataset import data, data_stats, validation_report
from credit_risk.errors import ConfigError, DataError
from credit_risk.spec.feature_spec import FeatureSpec

log = logging.getLogger(__name__)

# Files ``validate`` writes into its output directory.
STATS_FILE = "stats.pbtxt"
SCHEMA_FILE = "schema.pbtxt"
TFDV_ANOMALIES_FILE = "anomalies.pbtxt"
STATS_HTML_FILE = "stats.html"
REPORT_FILE = "validation.json"
ANOMALIES_MD_FILE = "anomalies.md"
DRIFT_FILE = "drift.json"
SCHEMA_SUFFIX = ".schema.pbtxt"  # curated schema beside the feature spec: <name>.schema.pbtxt
DEFAULT_DRIFT_THRESHOLD = 0.1


@dataclass(frozen=True)
class ValidationConfig:
    schema_uri: str = ""  # curated schema; "" = <spec dir>/<name>.schema.pbtxt if present, else inferred
    baseline_stats_uri: str = ""  # statistics of the data the deployed model was trained on (drift)
    serving_data_uri: str = ""  # a sample of serving requests (CSV/Parquet, spec columns) (skew)
    warn_only: tuple[str, ...] = ()  # anomaly kinds that are reported but do not fail
    drift_threshold: float = DEFAULT_DRIFT_THRESHOLD  # where the spec names none
    max_row_drop: float = 0.5  # fewer rows than (1 - this) x the baseline's is an anomaly
    max_duplicate_fraction: float = data.MAX_DUPLICATE_FRACTION
    min_positives: int = data.MIN_POSITIVES
    beam_args: tuple[str, ...] = ()  # non-empty: compute statistics on Beam with these options
    processes: int = 0  # fast path worker processes (0 = one per CPU)

    def __post_init__(self) -> None:
        if not 0 < self.drift_threshold <= 1:
            raise ConfigError(f"drift_threshold must be in (0, 1], got {self.drift_threshold}")
        if not 0 < self.max_row_drop < 1:
            raise ConfigError(f"max_row_drop must be in (0, 1), got {self.max_row_drop}")


@dataclass(frozen=True)
class Anomaly:
    column: str
    kind: str
    description: str
    severity: str = "ERROR"
    source: str = "tfdv"
    blocking: bool = True  # False: a kind the policy only warns about


@dataclass
class ValidationResult:
    data_uri: str
    num_rows: int
    num_columns: int
    anomalies: list[Anomaly] = field(default_factory=list)
    drift: dict[str, dict[str, float]] = field(default_factory=dict)  # feature -> {measure: value}
    schema_source: str = ""

    @property
    def blocking(self) -> list[Anomaly]:
        return [a for a in self.anomalies if a.blocking]

    @property
    def passed(self) -> bool:
        return not self.blocking

    def summary(self) -> str:
        warnings = [a for a in self.anomalies if not a.blocking]
        if self.passed:
            note = f", {len(warnings)} warning(s) allowed by policy" if warnings else ", no anomalies"
            lines = [f"validation passed: {self.num_rows} rows x {self.num_columns} columns{note}"]
        else:
            lines = [f"validation failed: {len(self.blocking)} anomalies in {self.data_uri}"]
        lines += [
            f"  - [{a.source}{'' if a.blocking else ', warning'}] column {a.column!r}: {a.description}"
            for a in self.anomalies
        ]
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(
            {
                "data_uri": self.data_uri,
                "num_rows": self.num_rows,
                "num_columns": self.num_columns,
                "passed": self.passed,
                "schema": self.schema_source,
                "anomalies": [asdict(a) for a in self.anomalies],
                "drift": self.drift,
            },
            indent=2,
        )

    def markdown(self) -> str:
        """A short table for the Kubeflow UI (Markdown artifact)."""
        verdict = "passed" if self.passed else "**failed**"
        lines = [
            f"### Data validation {verdict}",
            "",
            f"`{self.data_uri}`: {self.num_rows:,} rows x {self.num_columns} columns; "
            f"schema: {self.schema_source}",
            "",
        ]
        if not self.anomalies:
            lines.append("No anomalies.")
        else:
            lines += ["| column | kind | severity | fails step | description |", "|---|---|---|---|---|"]
            for a in self.anomalies:
                text = a.description.replace("|", "\\|").replace("\n", " ")
                fails = "yes" if a.blocking else "no (policy)"
                lines.append(f"| `{a.column}` | {a.kind} | {a.severity} | {fails} | {text} |")
        if self.drift:
            lines += ["", "| feature | measure | value | threshold |", "|---|---|---|---|"]
            for name, values in sorted(self.drift.items()):
                lines.append(
                    f"| `{name}` | {values['measure']} | {values['value']:.4f} | {values['threshold']:.4f} |"
                )
        return "\n".join(lines) + "\n"


def schema_for_spec(stats, spec: FeatureSpec):
    """Infer a schema from ``stats``, then impose what the spec promises (types, presence, label)."""
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = tfdv.infer_schema(stats)
    by_name = {f.name: f for f in schema.feature}

    def get(name: str):
        if name not in by_name:
            feature = schema.feature.add(name=name)
            by_name[name] = feature
        return by_name[name]

    for f in spec.features:
        feat = get(f.name)
        wanted = schema_pb2.FLOAT if f.is_numeric else schema_pb2.BYTES
        if feat.type != wanted:
            feat.type = wanted
            feat.ClearField("domain_info")  # an inferred domain of the wrong type is meaningless
        feat.presence.min_count = 1
        feat.presence.min_fraction = 0.0 if f.nullable else 1.0
        if f.is_numeric and (f.min is not None or f.max is not None):
            if f.min is not None:
                feat.float_domain.min = f.min
            if f.max is not None:
                feat.float_domain.max = f.max
    if spec.date_column:
        # text dates, present in every row; no value domain (every new month is a new value, and
        # the row checks test each date's form); no drift or skew comparator (apply_comparators)
        date = get(spec.date_column)
        date.type = schema_pb2.BYTES
        date.ClearField("domain_info")
        date.presence.min_count = 1
        date.presence.min_fraction = 1.0
    label = get(spec.label)
    label.type = schema_pb2.INT
    label.ClearField("domain_info")
    label.int_domain.min = 0
    label.int_domain.max = 1
    label.presence.min_count = 1
    label.presence.min_fraction = 1.0
    return schema


def infer_schema(data_uri: str, spec: FeatureSpec, processes: int = 0) -> Any:
    """A schema to review and commit as the dataset's curated schema: inferred from the data, then
    tightened by the spec (types, presence, ranges, label domain {0,1}) and made strict on
    categoricals (a value outside the observed domain is an anomaly)."""
    schema = schema_for_spec(data_stats.fast_statistics(data_uri, spec, processes), spec)
    for feature in schema.feature:
        if feature.HasField("domain") or feature.HasField("string_domain"):
            feature.distribution_constraints.min_domain_mass = 1.0
    return schema


def curated_schema_uri(spec: FeatureSpec) -> str | None:
    """``<spec dir>/<name>.schema.pbtxt`` when it exists."""
    if not spec.source_uri:
        return None
    uri = storage.join(storage.parent(spec.source_uri), spec.name + SCHEMA_SUFFIX)
    try:
        storage.read_text(uri)
    except FileNotFoundError:
        return None
    return uri


def load_schema(uri: str, spec: FeatureSpec) -> Any:
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = text_format.Parse(storage.read_text(uri), schema_pb2.Schema())
    names = {f.name for f in schema.feature}
    missing = [c for c in spec.columns if c not in names]
    if missing:
        raise ConfigError(
            f"schema {uri} has no entry for spec column(s) {missing}; regenerate it (infer-schema)"
        )
    return schema


def apply_comparators(schema: Any, spec: FeatureSpec, threshold: float) -> None:
    """Drift and skew comparators on every feature, thresholds from the spec (or ``threshold``):
    Jensen-Shannon divergence for numerics, L-infinity distance for categoricals."""
    by_name = {f.name: f for f in schema.feature}
    for f in spec.features:
        feature = by_name[f.name]
        limit = f.drift_threshold or threshold
        for comparator in (feature.drift_comparator, feature.skew_comparator):
            comparator.Clear()
            if f.is_numeric:
                comparator.jensen_shannon_divergence.threshold = limit
            else:
                comparator.infinity_norm.threshold = limit


def _load_stats(uri: str) -> Any:
    """A DatasetFeatureStatisticsList from a text proto (``stats.pbtxt``) or a binary/TFRecord file."""
    import tensorflow_data_validation as tfdv

    local = storage.local_copy(uri)
    try:
        return tfdv.load_stats_text(local)
    except Exception:
        return tfdv.load_statistics(local)


def _tfdv_anomalies(anomalies_proto: Any, warn_only: tuple[str, ...]) -> list[Anomaly]:
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    out = []
    for column, info in sorted(anomalies_proto.anomaly_info.items()):
        kinds = [anomalies_pb2.AnomalyInfo.Type.Name(r.type) for r in info.reason] or ["UNKNOWN"]
        out.append(
            Anomaly(
                column=column,
                kind=",".join(kinds),
                severity=anomalies_pb2.AnomalyInfo.Severity.Name(info.severity),
                description=info.description or info.short_description,
                blocking=any(k not in warn_only for k in kinds),
            )
        )
    for reason in anomalies_proto.dataset_anomaly_info.reason:
        kind = anomalies_pb2.AnomalyInfo.Type.Name(reason.type)
        out.append(
            Anomaly(column="*", kind=kind, description=reason.description, blocking=kind not in warn_only)
        )
    return out


def drift_values(anomalies_proto: Any) -> dict[str, dict[str, float]]:
    """Every drift/skew measurement TFDV made, also those under threshold (for KFP Metrics)."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    out: dict[str, dict[str, float]] = {}
    for info in anomalies_proto.drift_skew_info:
        name = ".".join(info.path.step)
        for kind, measurements in (("drift", info.drift_measurements), ("skew", info.skew_measurements)):
            for m in measurements:
                measure = anomalies_pb2.DriftSkewInfo.Measurement.Type.Name(m.type).lower()
                out[f"{name}:{kind}"] = {"measure": measure, "value": m.value, "threshold": m.threshold}
    return out


def _spec_checks(
    files: list[str], spec: FeatureSpec, config: ValidationConfig
) -> tuple[data.DataChecks, list]:
    """Stream every file through the spec's row checks; unreadable input becomes an anomaly."""
    checks = data.DataChecks(spec, config.max_duplicate_fraction, config.min_positives)
    problems: list[data.Problem] = []
    try:
        for uri in files:
            if not data_stats.is_parquet(uri):
                header = data_stats.csv_header(uri)
                other = [d for d in ";\t|" if len(header) == 1 and d in header[0]]
                if other:
                    message = (
                        f"{uri}: the header is one column {header[0][:80]!r}: the file looks "
                        f"{other[0]!r}-delimited; expected comma-separated columns {spec.columns}"
                    )
                    return checks, [data.Problem("*", "wrong_delimiter", message)]
            for batch in data_stats.raw_batches(uri):
                checks.add(data_stats.as_text(batch))
    except DataError as e:
        problems.append(data.Problem("*", "unreadable", str(e)))
        return checks, problems
    return checks, checks.problems()


def validate(
    data_uri: str, spec: FeatureSpec, out_dir: str | Path, config: ValidationConfig | None = None
) -> ValidationResult:
    """Statistics, schema, anomalies, drift and skew for ``data_uri``, written to ``out_dir``.

    Writes statistics, the schema used and TFDV anomalies as text protos, the Facets HTML (side by
    side with the baseline when one is given), the JSON report, the Markdown table and the drift
    values. Never raises for bad data: the caller decides (``result.passed``).
    """
    import tensorflow_data_validation as tfdv
    from tensorflow_data_validation.utils import display_util

    config = config or ValidationConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    files = storage.list_files(data_uri)
    checks, problems = _spec_checks(files, spec, config)
    spec_anomalies = [
        Anomaly(
            column=p.column,
            kind=p.kind,
            description=p.message,
            source="spec",
            blocking=p.kind not in config.warn_only,
        )
        for p in problems
    ]
    result = ValidationResult(
        data_uri=data_uri,
        num_rows=checks.rows,
        num_columns=len(checks.columns or []),
        anomalies=spec_anomalies,
    )
    if any(p.kind in ("unreadable", "no_rows") for p in problems) or not checks.columns:
        _write(result, out, None, None, None, None)
        return result

    if config.beam_args:
        stats = data_stats.beam_statistics(data_uri, spec, config.beam_args)
    else:
        stats = data_stats.fast_statistics(data_uri, spec, config.processes)
    schema_uri = config.schema_uri or curated_schema_uri(spec)
    if schema_uri:
        schema, result.schema_source = load_schema(schema_uri, spec), schema_uri
    else:
        schema, result.schema_source = schema_for_spec(stats, spec), "inferred (no curated schema)"
        log.warning("no curated schema for %s: validating against one inferred from this data", spec.name)
    apply_comparators(schema, spec, config.drift_threshold)
    baseline = _load_stats(config.baseline_stats_uri) if config.baseline_stats_uri else None
    serving = data_stats.fast_statistics(config.serving_data_uri, spec) if config.serving_data_uri else None
    anomalies_proto = tfdv.validate_statistics(
        stats, schema, previous_statistics=baseline, serving_statistics=serving
    )
    result.anomalies = _tfdv_anomalies(anomalies_proto, config.warn_only) + spec_anomalies
    result.drift = drift_values(anomalies_proto)
    if baseline is not None:
        base_rows = baseline.datasets[0].num_examples
        if checks.rows < (1 - config.max_row_drop) * base_rows:
            result.anomalies.append(
                Anomaly(
                    column="*",
                    kind="row_count_collapse",
                    source="baseline",
                    description=f"{checks.rows} rows vs {base_rows} in the baseline: fewer than "
                    f"{1 - config.max_row_drop:.0%} of it - an extract that lost data?",
                    blocking="row_count_collapse" not in config.warn_only,
                )
            )
    if baseline is not None:
        facets = display_util.get_statistics_html(
            stats, rhs_statistics=baseline, lhs_name="this data", rhs_name="baseline"
        )
    else:
        facets = display_util.get_statistics_html(stats)
    html = validation_report.validation_html(result, stats, baseline, facets)
    _write(result, out, stats, schema, anomalies_proto, html)
    log.info(
        "validated %s: %d rows, %d anomalies (%d blocking) in %.2fs -> %s",
        data_uri,
        result.num_rows,
        len(result.anomalies),
        len(result.blocking),
        time.perf_counter() - start,
        out,
    )
    return result


def _write(
    result: ValidationResult, out: Path, stats: Any, schema: Any, anomalies: Any, html: str | None
) -> None:
    import tensorflow_data_validation as tfdv

    if stats is not None:
        tfdv.write_stats_text(stats, str(out / STATS_FILE))
        tfdv.write_schema_text(schema, str(out / SCHEMA_FILE))
        tfdv.write_anomalies_text(anomalies, str(out / TFDV_ANOMALIES_FILE))
    (out / STATS_HTML_FILE).write_text(html or "<p>No statistics: the data could not be read.</p>")
    (out / REPORT_FILE).write_text(result.to_json())
    (out / ANOMALIES_MD_FILE).write_text(result.markdown())
    (out / DRIFT_FILE).write_text(json.dumps(result.drift, indent=2, sort_keys=True))
