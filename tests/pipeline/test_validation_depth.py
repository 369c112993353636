"""The validate step as the pipeline's guard: every kind of bad dataset stops it, with the anomaly
named, and leaves no snapshot; drift and skew against a baseline; the policy; the UI report."""

import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from credit_risk import steps
from credit_risk.dataset import validation
from credit_risk.errors import DataValidationError
from tests.helpers import GERMAN_CSV, GERMAN_SPEC, drop_column, edited_copy, set_cell, set_column

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _edited(tmp_path, edit, name="data.csv"):
    return edited_copy(GERMAN_CSV, tmp_path / name, edit)


def _add_column(header, rows):
    return [*header, "zip_code"], [[*r, "12345"] for r in rows]


def _duplicate(header, rows):
    return header, rows + rows[:50]


def _copy_label_into(column):
    def edit(header, rows):
        for r in rows:
            r[header.index(column)] = r[header.index("default")]
        return header, rows

    return edit


def _write_text(text):
    def make(tmp_path):
        (tmp_path / "data.csv").write_text(text)
        return str(tmp_path / "data.csv")

    return make


def _semicolons(tmp_path):
    lines = GERMAN_CSV.read_text().splitlines()
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, delimiter=";")
    for row in csv.reader(lines):
        writer.writerow(row)
    (tmp_path / "data.csv").write_text(out.getvalue())
    return str(tmp_path / "data.csv")


BAD = {
    "empty file": (_write_text(""), "unreadable", "the file is empty"),
    "header only": (
        _write_text(GERMAN_CSV.read_text().splitlines()[0] + "\n"),
        "no_rows",
        "header but zero rows",
    ),
    "wrong delimiter": (_semicolons, "wrong_delimiter", "looks ';'-delimited"),
    "numeric column with text": (
        lambda p: _edited(p, set_cell(41, "age_in_years", "forty")),
        "not_numeric",
        "row 42 (file line 43) value 'forty'",
    ),
    "missing required column": (lambda p: _edited(p, drop_column("housing")), "missing_column", "'housing'"),
    "unexpected new column": (lambda p: _edited(p, _add_column), "unexpected_column", "'zip_code'"),
    "new category": (
        lambda p: _edited(p, set_cell(3, "purpose", "crypto")),
        "ENUM_TYPE_UNEXPECTED_STRING_VALUES",
        "crypto",
    ),
    "out-of-range value": (
        lambda p: _edited(p, set_cell(4, "age_in_years", "7")),
        "out_of_range",
        "must be in [18, 100] but is not at row 5 (file line 6) value '7'",
    ),
    "all labels one class": (
        lambda p: _edited(p, set_column("default", "0")),
        "single_class",
        "single class",
    ),
    "label missing": (
        lambda p: _edited(p, drop_column("default")),
        "missing_column",
        "column 'default' is missing",
    ),
    "duplicated rows": (lambda p: _edited(p, _duplicate), "duplicate_rows", "50 of 1050 rows"),
    "feature identical to label": (
        lambda p: _edited(p, _copy_label_into("telephone")),
        "label_leakage",
        "identical to the label",
    ),
    "too few positives": (
        lambda p: _edited(
            p,
            lambda h, r: (
                h,
                [row for row in r if row[h.index("default")] == "0"]
                + r[:40][:0]
                + [row for row in r if row[h.index("default")] == "1"][:5],
            ),
        ),
        "too_few_positives",
        "only 5 positive",
    ),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_dataset_stops_the_step_with_the_anomaly_named(tmp_path, case):
    make, kind, text = BAD[case]
    uri = make(tmp_path)
    snapshot = tmp_path / "snapshot" / "data.csv"
    with pytest.raises(DataValidationError) as failure:
        steps.validate_step(uri, str(GERMAN_SPEC), str(tmp_path / "out"), str(snapshot))
    assert text in str(failure.value)
    report = json.loads((tmp_path / "out" / validation.REPORT_FILE).read_text())
    assert report["passed"] is False
    assert any(kind in a["kind"] and a["blocking"] for a in report["anomalies"]), report["anomalies"]
    assert kind in (tmp_path / "out" / validation.ANOMALIES_MD_FILE).read_text()
    assert not snapshot.exists() and not list(snapshot.parent.glob("*")) if snapshot.parent.exists() else True


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, german_spec):
    out = tmp_path_factory.mktemp("baseline")
    assert validation.validate(str(GERMAN_CSV), german_spec, out).passed
    return str(out / validation.STATS_FILE)


def _shifted(tmp_path):
    """The same applicants asking for three times the money: a drifted distribution."""
    frame = pd.read_csv(GERMAN_CSV, dtype=str, keep_default_na=False)
    frame["credit_amount"] = (frame["credit_amount"].astype(float) * 3).round().astype(int).astype(str)
    frame.to_csv(tmp_path / "shifted.csv", index=False)
    return str(tmp_path / "shifted.csv")


def test_drift_against_the_baseline_stops_the_step_and_every_value_is_kept(tmp_path, baseline):
    config = validation.ValidationConfig(baseline_stats_uri=baseline)
    with pytest.raises(DataValidationError, match="credit_amount"):
        steps.validate_step(
            _shifted(tmp_path), str(GERMAN_SPEC), str(tmp_path / "out"), str(tmp_path / "s.csv"), config
        )
    report = json.loads((tmp_path / "out" / validation.REPORT_FILE).read_text())
    kinds = {a["column"]: a["kind"] for a in report["anomalies"]}
    assert "JENSEN_SHANNON_DIVERGENCE_HIGH" in kinds["credit_amount"]
    drift = report["drift"]
    assert drift["credit_amount:drift"]["value"] > 0.1  # over its threshold
    assert drift["purpose:drift"]["value"] == 0.0  # unchanged, still recorded
    assert drift["purpose:drift"]["measure"] == "l_infty" and len(drift) == 20  # every feature
    assert not (tmp_path / "s.csv").exists()


def test_the_same_data_as_the_baseline_passes_with_zero_drift(tmp_path, german_spec, baseline):
    config = validation.ValidationConfig(baseline_stats_uri=baseline)
    result = validation.validate(str(GERMAN_CSV), german_spec, tmp_path, config)
    assert result.passed and all(v["value"] == 0 for v in result.drift.values())


def test_skew_against_serving_requests(tmp_path, german_spec):
    config = validation.ValidationConfig(serving_data_uri=_shifted(tmp_path))
    result = validation.validate(str(GERMAN_CSV), german_spec, tmp_path / "out", config)
    assert not result.passed
    assert any(a.column == "credit_amount" and "JENSEN_SHANNON" in a.kind for a in result.anomalies)
    assert result.drift["credit_amount:skew"]["value"] > 0.1


def test_row_count_collapse_against_the_baseline(tmp_path, german_spec, baseline):
    small = _edited(tmp_path, lambda h, r: (h, r[:300]))
    result = validation.validate(
        small, german_spec, tmp_path / "out", validation.ValidationConfig(baseline_stats_uri=baseline)
    )
    collapse = [a for a in result.anomalies if a.kind == "row_count_collapse"]
    assert collapse and "300 rows vs 1000 in the baseline" in collapse[0].description


def test_policy_can_let_a_new_category_through_as_a_warning(tmp_path, german_spec):
    uri = _edited(tmp_path, set_cell(3, "purpose", "crypto"))
    config = validation.ValidationConfig(warn_only=("ENUM_TYPE_UNEXPECTED_STRING_VALUES",))
    snapshot = tmp_path / "snap.csv"
    result = steps.validate_step(uri, str(GERMAN_SPEC), str(tmp_path / "out"), str(snapshot), config)
    assert result.passed and [a.kind for a in result.anomalies] == ["ENUM_TYPE_UNEXPECTED_STRING_VALUES"]
    assert not result.anomalies[0].blocking and "warning" in result.summary()
    assert len(pd.read_parquet(snapshot)) == 1000


def test_curated_schema_is_the_one_beside_the_spec_and_must_cover_the_spec(tmp_path, german_spec):
    result = validation.validate(str(GERMAN_CSV), german_spec, tmp_path / "a")
    assert result.schema_source.endswith("german_credit.schema.pbtxt")
    text = (GERMAN_SPEC.parent / "german_credit.schema.pbtxt").read_text()
    cut = text[: text.index('feature {\n  name: "purpose"')]  # a schema that lost features
    (tmp_path / "short.pbtxt").write_text(cut)
    with pytest.raises(Exception, match="has no entry for spec column"):
        validation.validate(
            str(GERMAN_CSV),
            german_spec,
            tmp_path / "b",
            validation.ValidationConfig(schema_uri=str(tmp_path / "short.pbtxt")),
        )


def test_infer_schema_makes_categorical_domains_complete(german_spec):
    schema = validation.infer_schema(str(GERMAN_CSV), german_spec, processes=1)
    purpose = next(f for f in schema.feature if f.name == "purpose")
    assert purpose.distribution_constraints.min_domain_mass == 1.0
    domains = {d.name: list(d.value) for d in schema.string_domain}
    assert "car (new)" in domains[purpose.domain]


@pytest.mark.slow
def test_stats_report_renders_side_by_side_in_headless_chromium(tmp_path, german_spec, baseline):
    from PIL import Image

    if CHROMIUM is None:
        pytest.fail("chromium is not installed: bin/test installs it (apt-get install chromium)")
    config = validation.ValidationConfig(baseline_stats_uri=baseline)
    validation.validate(_shifted(tmp_path), german_spec, tmp_path / "out", config)
    page = tmp_path / "out" / validation.STATS_HTML_FILE
    html = page.read_text()
    assert "<facets-overview" in html and "baseline" in html and "jensen_shannon_divergence" in html
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,1600",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)
    assert pixels.shape[0] >= 1000
    non_white = (pixels < 240).any(axis=2).mean()
    assert non_white > 0.02  # text, tables and plots, not a blank page
    red = ((pixels[:, :, 0] > 150) & (pixels[:, :, 1] < 90) & (pixels[:, :, 2] < 90)).sum()
    assert red > 50  # the FAILED verdict is drawn in red


def test_parquet_and_gcs_inputs_validate_like_the_csv(tmp_path, german_spec, gcs):
    frame = pd.read_csv(GERMAN_CSV)
    frame.to_parquet(tmp_path / "part-0.parquet", index=False)
    parquet = validation.validate(str(tmp_path / "part-0.parquet"), german_spec, tmp_path / "p")
    assert parquet.passed, parquet.summary()
    client, bucket = gcs
    client.bucket(bucket).blob("raw/german.csv").upload_from_filename(str(GERMAN_CSV))
    remote = validation.validate(f"gs://{bucket}/raw/german.csv", german_spec, tmp_path / "g")
    assert remote.passed and remote.num_rows == parquet.num_rows == 1000
    frame.loc[7, "age_in_years"] = 150  # out of range, in a Parquet file
    frame.to_parquet(tmp_path / "part-0.parquet", index=False)
    bad = validation.validate(str(tmp_path / "part-0.parquet"), german_spec, tmp_path / "b")
    assert any(a.kind == "out_of_range" and "row 8" in a.description for a in bad.anomalies)
