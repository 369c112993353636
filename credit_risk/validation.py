"""Data validation with TensorFlow Data Validation: statistics, schema, anomalies.

Two complementary checks, reported together:
- TFDV: statistics of the data, validated against a schema inferred from them and tightened by the
  feature spec (types, required columns, presence, label domain) - the check that scales (Beam).
- Row-level spec checks (``credit_risk.data.find_problems``): which row and value broke a column,
  which TFDV's column-level statistics cannot say.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from credit_risk import data
from credit_risk.feature_spec import FeatureSpec

log = logging.getLogger(__name__)

# Files ``validate`` writes into its output directory.
STATS_FILE = "stats.pbtxt"
SCHEMA_FILE = "schema.pbtxt"
TFDV_ANOMALIES_FILE = "anomalies.pbtxt"
STATS_HTML_FILE = "stats.html"
REPORT_FILE = "validation.json"


@dataclass(frozen=True)
class Anomaly:
    column: str
    kind: str
    description: str
    severity: str = "ERROR"
    source: str = "tfdv"


@dataclass
class ValidationResult:
    data_uri: str
    num_rows: int
    num_columns: int
    anomalies: list[Anomaly] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.anomalies

    def summary(self) -> str:
        if self.passed:
            return f"validation passed: {self.num_rows} rows x {self.num_columns} columns, no anomalies"
        lines = [f"validation failed: {len(self.anomalies)} anomalies in {self.data_uri}"]
        lines += [f"  - [{a.source}] column {a.column!r}: {a.description}" for a in self.anomalies]
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(
            {
                "data_uri": self.data_uri,
                "num_rows": self.num_rows,
                "num_columns": self.num_columns,
                "passed": self.passed,
                "anomalies": [asdict(a) for a in self.anomalies],
            },
            indent=2,
        )


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
    label = get(spec.label)
    label.type = schema_pb2.INT
    label.ClearField("domain_info")
    label.int_domain.min = 0
    label.int_domain.max = 1
    label.presence.min_count = 1
    label.presence.min_fraction = 1.0
    return schema


def _tfdv_anomalies(anomalies_proto) -> list[Anomaly]:
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    out = []
    for column, info in sorted(anomalies_proto.anomaly_info.items()):
        kinds = ",".join(anomalies_pb2.AnomalyInfo.Type.Name(r.type) for r in info.reason) or "UNKNOWN"
        severity = anomalies_pb2.AnomalyInfo.Severity.Name(info.severity)
        out.append(
            Anomaly(
                column=column,
                kind=kinds,
                severity=severity,
                description=info.description or info.short_description,
            )
        )
    for reason in anomalies_proto.dataset_anomaly_info.reason:
        out.append(Anomaly(column="*", kind=str(reason.type), description=reason.description))
    return out


def _for_tfdv(frame: pd.DataFrame) -> pd.DataFrame:
    """TFDV's Arrow conversion wants None, not NaN, for a missing value in a text column."""
    frame = frame.copy()
    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    return frame


def validate(data_uri: str, spec: FeatureSpec, out_dir: str | Path) -> ValidationResult:
    """Compute statistics, schema and anomalies for ``data_uri`` and write them to ``out_dir``.

    Writes the statistics, schema and TFDV anomalies as text protos, the Facets HTML and the JSON
    report (file names above). Never raises for bad data: the caller decides.
    """
    import tensorflow_data_validation as tfdv
    from tensorflow_data_validation.utils import display_util

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    raw = data.read_raw(data_uri)
    problems = data.find_problems(raw, spec)
    typed = _for_tfdv(data.typed_frame(raw, spec))
    stats = tfdv.generate_statistics_from_dataframe(typed)
    schema = schema_for_spec(stats, spec)
    anomalies_proto = tfdv.validate_statistics(stats, schema)
    anomalies = _tfdv_anomalies(anomalies_proto)
    anomalies += [
        Anomaly(column=p.column, kind=p.kind, description=p.message, source="spec") for p in problems
    ]

    tfdv.write_stats_text(stats, str(out / STATS_FILE))
    tfdv.write_schema_text(schema, str(out / SCHEMA_FILE))
    tfdv.write_anomalies_text(anomalies_proto, str(out / TFDV_ANOMALIES_FILE))
    (out / STATS_HTML_FILE).write_text(display_util.get_statistics_html(stats))
    result = ValidationResult(
        data_uri=data_uri, num_rows=len(raw), num_columns=len(raw.columns), anomalies=anomalies
    )
    (out / REPORT_FILE).write_text(result.to_json())
    log.info(
        "validated %s: %d rows, %d anomalies in %.2fs -> %s",
        data_uri,
        len(raw),
        len(anomalies),
        time.perf_counter() - start,
        out,
    )
    return result
