"""The feature spec: one YAML file per dataset, the single source of truth for feature names.

Validation (expected types and presence), the model's inputs, the serving request contract and the
reason codes all read this object; no other module lists feature names.

YAML keys::

    name: german_credit            # dataset id, [a-z0-9_]+
    description: free text
    data_file: german_credit.csv   # optional, relative to the spec file
    label: {name: default}         # binary 0/1 column, 1 = default
    origination_date: opened_on    # optional: each loan's origination date (YYYY-MM-DD), not a
                                   # model input; the held-out rows become the latest dates
                                   # (out of time) and evaluation adds a vintage back-test
    features:                      # in order
      - name: duration_in_month
        type: numeric | categorical
        nullable: false            # may the value be missing (null / empty)?
        model_input: true          # false: kept for fairness slices only
        protected: false           # never a reason code; used for fairness slices
        min: 18                    # numeric only, optional: business-rule range [min, max]
        max: 100
        drift_threshold: 0.1       # optional: drift alarm vs the baseline statistics (Jensen-
                                   # Shannon divergence for numerics, L-infinity for categoricals)
        monotone: increasing       # numeric only, optional: the PD must never fall (increasing) /
                                   # rise (decreasing) as this feature grows; checked by a sweep in
                                   # evaluation, enforced in training with model.monotone_constraints
        reason_text: Loan term too long  # optional: the adverse-action statement for this feature
        description: free text
    crosses: [[cat_a, cat_b], ...] # categorical pairs hashed together for the wide part
    slices:                        # extra groups for evaluation / fairness (protected
      - name: age_band             # categoricals are always sliced by value)
        feature: age_in_years
        bins: [18, 25, 35, 50, 120] # numeric edges, [lo, hi); omit for a categorical
    master_scale:                  # optional rating scale: grades G1 (lowest PD) ... on PD cuts
      boundaries: [0.05, 0.1, 0.2] #   fixed PD boundaries (strictly increasing in (0, 1)), or
      # grades: 7                  #   a target count, cut at quantiles of the training PDs
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from credit_risk import storage
from credit_risk.errors import FeatureSpecError
from credit_risk.spec.rating import MAX_GRADES, MIN_GRADES, MasterScale

NUMERIC = "numeric"
CATEGORICAL = "categorical"
FEATURE_TYPES = (NUMERIC, CATEGORICAL)
INCREASING, DECREASING = "increasing", "decreasing"
MONOTONE = (INCREASING, DECREASING)
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_OPTIONAL_FEATURE_KEYS = (
    "nullable", "model_input", "protected", "description", "min", "max", "drift_threshold",
    "monotone", "reason_text",
)  # fmt: skip
_FEATURE_KEYS = {"name", "type", *_OPTIONAL_FEATURE_KEYS}
_TOP_KEYS = {
    "name", "description", "data_file", "label", "origination_date", "features", "crosses", "slices",
    "master_scale",
}  # fmt: skip
_SLICE_KEYS = {"name", "feature", "bins"}


@dataclass(frozen=True)
class Feature:
    name: str
    type: str
    nullable: bool = False
    model_input: bool = True
    protected: bool = False
    description: str = ""
    min: float | None = None
    max: float | None = None
    drift_threshold: float | None = None  # None: the validation default
    monotone: str | None = None  # increasing | decreasing | None (no constraint)
    reason_text: str = ""

    @property
    def is_numeric(self) -> bool:
        return self.type == NUMERIC

    @property
    def direction(self) -> int:
        """+1 (PD may only rise with the feature), -1 (only fall) or 0 (no constraint)."""
        return {INCREASING: 1, DECREASING: -1}.get(self.monotone or "", 0)

    @property
    def reason_statement(self) -> str:
        """The adverse-action statement: ``reason_text``, else one made from the description."""
        if self.reason_text:
            return self.reason_text
        subject = self.description or self.name.replace("_", " ")
        return f"{subject[:1].upper()}{subject[1:]}"

    def out_of_range(self, value: float) -> str | None:
        """Why ``value`` breaks this feature's business-rule range, or None."""
        if self.min is not None and value < self.min:
            return f"{value!r} is below the minimum {self.min:g}"
        if self.max is not None and value > self.max:
            return f"{value!r} is above the maximum {self.max:g}"
        return None


@dataclass(frozen=True)
class Slice:
    name: str
    feature: str
    bins: tuple[float, ...] | None = None


@dataclass(frozen=True)
class ScaleSetting:
    """The spec's ``master_scale``: fixed boundaries, or a grade count fitted at training time."""

    boundaries: tuple[float, ...] = ()
    grades: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"boundaries": list(self.boundaries)} if self.boundaries else {"grades": self.grades}


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    label: str
    features: tuple[Feature, ...]
    crosses: tuple[tuple[str, str], ...] = ()
    slices: tuple[Slice, ...] = ()
    description: str = ""
    data_file: str | None = None
    master_scale: ScaleSetting | None = None
    date_column: str | None = None  # origination_date: the loans' origination dates, not a model input
    source_uri: str | None = field(default=None, compare=False)

    # --- views -------------------------------------------------------------------------------
    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def model_features(self) -> list[Feature]:
        """Features the model takes as input, in spec order (also the serving contract)."""
        return [f for f in self.features if f.model_input]

    @property
    def protected_features(self) -> list[Feature]:
        return [f for f in self.features if f.protected]

    @property
    def monotone_features(self) -> list[Feature]:
        """Model inputs with a declared monotone direction, in spec order."""
        return [f for f in self.model_features if f.monotone]

    @property
    def columns(self) -> list[str]:
        """Every column a dataset must have: the features, the label, then the origination date
        (when the spec names one)."""
        return [*self.feature_names, self.label, *([self.date_column] if self.date_column else [])]

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def data_path(self) -> str | None:
        """The bundled data file, resolved relative to the spec file, if the spec names one."""
        if not self.data_file or not self.source_uri:
            return None
        return storage.join(storage.parent(self.source_uri), self.data_file)

    def to_dict(self) -> dict[str, Any]:
        """The YAML form; keys at their default value are left out."""
        default = Feature(name="_", type=NUMERIC)
        features = []
        for f in self.features:
            item: dict[str, Any] = {"name": f.name, "type": f.type}
            for key in _OPTIONAL_FEATURE_KEYS:
                if getattr(f, key) != getattr(default, key):
                    item[key] = getattr(f, key)
            features.append(item)
        out: dict[str, Any] = {"name": self.name, "description": self.description}
        if self.data_file:
            out["data_file"] = self.data_file
        out["label"] = {"name": self.label}
        if self.date_column:
            out["origination_date"] = self.date_column
        out["features"] = features
        out["crosses"] = [list(c) for c in self.crosses]
        if self.slices:
            out["slices"] = [
                {"name": s.name, "feature": s.feature, **({"bins": list(s.bins)} if s.bins else {})}
                for s in self.slices
            ]
        if self.master_scale:
            out["master_scale"] = self.master_scale.to_dict()
        return out

    def to_yaml(self) -> str:
        return str(yaml.safe_dump(self.to_dict(), sort_keys=False))


# --- parsing ---------------------------------------------------------------------------------
def _require(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise FeatureSpecError(f"feature spec {where}: {msg}")


def _parse_bool(raw: dict[str, Any], key: str, default: bool, where: str) -> bool:
    value = raw.get(key, default)
    _require(isinstance(value, bool), f"{where}.{key}", f"expected true/false, got {value!r}")
    return bool(value)


def _parse_bounds(raw: dict[str, Any], ftype: str, where: str) -> dict[str, float]:
    bounds: dict[str, float] = {}
    for key in ("min", "max"):
        if key in raw:
            value = raw[key]
            _require(ftype == NUMERIC, f"{where}.{key}", "a range applies to numeric features only")
            _require(
                isinstance(value, (int, float)) and not isinstance(value, bool),
                f"{where}.{key}",
                f"expected a number, got {value!r}",
            )
            bounds[key] = float(value)
    if "min" in bounds and "max" in bounds:
        _require(
            bounds["min"] < bounds["max"], where, f"min {bounds['min']:g} must be below max {bounds['max']:g}"
        )
    return bounds


def _parse_threshold(raw: dict[str, Any], where: str) -> float | None:
    if "drift_threshold" not in raw:
        return None
    value = raw["drift_threshold"]
    _require(
        isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1,
        f"{where}.drift_threshold",
        f"expected a number in (0, 1], got {value!r}",
    )
    return float(value)


def _parse_monotone(raw: dict[str, Any], ftype: str, where: str) -> str | None:
    if "monotone" not in raw:
        return None
    value = raw["monotone"]
    _require(ftype == NUMERIC, f"{where}.monotone", "a monotone direction applies to numeric features only")
    _require(value in MONOTONE, f"{where}.monotone", f"expected one of {MONOTONE}, got {value!r}")
    return str(value)


def _parse_scale(raw: Any, where: str) -> ScaleSetting | None:
    if raw is None:
        return None
    at = f"{where}: master_scale"
    _require(
        isinstance(raw, dict) and len(raw) == 1 and set(raw) <= {"boundaries", "grades"},
        at,
        f"expected {{boundaries: [...]}} or {{grades: N}}, got {raw!r}",
    )
    if "grades" in raw:
        n = raw["grades"]
        _require(
            isinstance(n, int) and not isinstance(n, bool) and MIN_GRADES <= n <= MAX_GRADES,
            f"{at}.grades",
            f"expected an integer from {MIN_GRADES} to {MAX_GRADES}, got {n!r}",
        )
        return ScaleSetting(grades=n)
    bounds = raw["boundaries"]
    _require(
        isinstance(bounds, list)
        and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds),
        f"{at}.boundaries",
        f"expected a list of PDs, got {bounds!r}",
    )
    try:
        MasterScale(tuple(float(b) for b in bounds))
    except FeatureSpecError as e:
        raise FeatureSpecError(f"feature spec {at}.boundaries: {e}") from e
    return ScaleSetting(boundaries=tuple(float(b) for b in bounds))


def from_dict(raw: Any, source_uri: str | None = None) -> FeatureSpec:  # noqa: PLR0915 - one check per key
    """Build and validate a spec; every error names the key path and the bad value."""
    where = source_uri or "<dict>"
    _require(isinstance(raw, dict), where, f"expected a mapping at top level, got {type(raw).__name__}")
    unknown = set(raw) - _TOP_KEYS
    _require(not unknown, where, f"unknown keys {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    name = raw.get("name")
    _require(
        isinstance(name, str) and bool(_NAME_RE.match(name or "")),
        f"{where}: name",
        f"expected an identifier, got {name!r}",
    )
    label_raw = raw.get("label")
    label = label_raw.get("name") if isinstance(label_raw, dict) else label_raw
    _require(
        isinstance(label, str) and bool(_NAME_RE.match(label or "")),
        f"{where}: label.name",
        f"expected a column name, got {label!r}",
    )

    date_column = raw.get("origination_date")
    _require(
        date_column is None or (isinstance(date_column, str) and bool(_NAME_RE.match(date_column))),
        f"{where}: origination_date",
        f"expected a column name, got {date_column!r}",
    )
    _require(date_column != label, f"{where}: origination_date", f"{date_column!r} is also the label")

    feats_raw = raw.get("features")
    _require(
        isinstance(feats_raw, list) and len(feats_raw) > 0, f"{where}: features", "expected a non-empty list"
    )
    features: list[Feature] = []
    seen: set[str] = set()
    for i, fr in enumerate(feats_raw):
        at = f"{where}: features[{i}]"
        _require(isinstance(fr, dict), at, f"expected a mapping, got {fr!r}")
        unknown = set(fr) - _FEATURE_KEYS
        _require(not unknown, at, f"unknown keys {sorted(unknown)}; allowed: {sorted(_FEATURE_KEYS)}")
        fname = fr.get("name")
        _require(
            isinstance(fname, str) and bool(_NAME_RE.match(fname or "")),
            f"{at}.name",
            f"expected an identifier, got {fname!r}",
        )
        _require(fname not in seen, f"{at}.name", f"duplicate feature {fname!r}")
        _require(fname != label, f"{at}.name", f"feature {fname!r} is also the label")
        _require(
            fname != date_column,
            f"{at}.name",
            f"feature {fname!r} is also the origination_date (a date is never a model input)",
        )
        ftype = fr.get("type")
        _require(ftype in FEATURE_TYPES, f"{at}.type", f"expected one of {FEATURE_TYPES}, got {ftype!r}")
        seen.add(fname)
        bounds = _parse_bounds(fr, ftype, at)
        features.append(
            Feature(
                name=fname,
                type=ftype,
                nullable=_parse_bool(fr, "nullable", False, at),
                model_input=_parse_bool(fr, "model_input", True, at),
                protected=_parse_bool(fr, "protected", False, at),
                description=str(fr.get("description", "")),
                min=bounds.get("min"),
                max=bounds.get("max"),
                drift_threshold=_parse_threshold(fr, at),
                monotone=_parse_monotone(fr, ftype, at),
                reason_text=str(fr.get("reason_text", "")),
            )
        )
    _require(any(f.model_input for f in features), f"{where}: features", "no feature is a model_input")

    by_name = {f.name: f for f in features}
    crosses: list[tuple[str, str]] = []
    for i, pair in enumerate(raw.get("crosses") or []):
        at = f"{where}: crosses[{i}]"
        _require(isinstance(pair, list) and len(pair) == 2, at, f"expected a pair [a, b], got {pair!r}")
        for col in pair:
            _require(col in by_name, at, f"unknown feature {col!r}")
            f = by_name[col]
            _require(f.type == CATEGORICAL, at, f"{col!r} is {f.type}; only categoricals are crossed")
            _require(f.model_input, at, f"{col!r} is not a model_input")
        crosses.append((pair[0], pair[1]))

    slices: list[Slice] = []
    for i, sr in enumerate(raw.get("slices") or []):
        at = f"{where}: slices[{i}]"
        _require(isinstance(sr, dict), at, f"expected a mapping, got {sr!r}")
        unknown = set(sr) - _SLICE_KEYS
        _require(not unknown, at, f"unknown keys {sorted(unknown)}; allowed: {sorted(_SLICE_KEYS)}")
        _require(
            isinstance(sr.get("name"), str) and bool(_NAME_RE.match(sr.get("name") or "")),
            f"{at}.name",
            f"expected an identifier, got {sr.get('name')!r}",
        )
        _require(sr.get("feature") in by_name, f"{at}.feature", f"unknown feature {sr.get('feature')!r}")
        bins = sr.get("bins")
        if bins is not None:
            _require(by_name[sr["feature"]].is_numeric, f"{at}.bins", "bins apply to numeric features only")
            _require(
                isinstance(bins, list)
                and len(bins) >= 3
                and all(isinstance(b, (int, float)) for b in bins)
                and all(a < b for a, b in itertools.pairwise(bins)),
                f"{at}.bins",
                f"expected >= 3 increasing numbers, got {bins!r}",
            )
        else:
            _require(not by_name[sr["feature"]].is_numeric, f"{at}.bins", "a numeric slice needs bins")
        slices.append(Slice(sr["name"], sr["feature"], tuple(float(b) for b in bins) if bins else None))

    data_file = raw.get("data_file")
    _require(
        data_file is None or isinstance(data_file, str),
        f"{where}: data_file",
        f"expected a file name, got {data_file!r}",
    )
    return FeatureSpec(
        name=name,
        label=str(label),
        features=tuple(features),
        crosses=tuple(crosses),
        slices=tuple(slices),
        description=str(raw.get("description", "")),
        data_file=data_file,
        source_uri=source_uri,
        master_scale=_parse_scale(raw.get("master_scale"), where),
        date_column=date_column,
    )


def load(uri: str | Path) -> FeatureSpec:
    """Load a spec from a local path, ``gs://`` or ``s3://`` URI."""
    uri = str(uri)
    try:
        text = storage.read_text(uri)
    except FileNotFoundError as e:
        raise FeatureSpecError(f"feature spec not found: {uri}") from e
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise FeatureSpecError(f"feature spec {uri}: not valid YAML: {e}") from e
    return from_dict(raw, source_uri=uri)
