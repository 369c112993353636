"""Out-of-time / vintage back-testing (credit_risk/evidence/vintage.py, ``credit-risk backtest``) against
hand-computed tables and a seeded under-estimated cohort the test must flag."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from credit_risk.app import cli
from credit_risk.dataset import synthetic
from credit_risk.errors import DataError
from credit_risk.evidence import vintage
from tests.helpers import GERMAN_CSV


def test_the_cohort_table_matches_a_hand_computed_one():
    dates = pd.Series(["2024-01-15", "2024-02-01", "2024-03-31", "2024-04-01", "2024-06-30", "2025-01-02"],
                      name="booked_on")  # fmt: skip
    labels = np.array([1, 0, 0, 1, 1, 0])
    pds = np.array([0.5, 0.2, 0.2, 0.3, 0.1, 0.4])
    report = vintage.vintage_report(dates, labels, pds, period="quarter", alpha=0.05)
    rows = {c.cohort: c for c in report.cohorts}
    assert list(rows) == ["2024Q1", "2024Q2", "2025Q1"]
    q1, q2, q5 = rows["2024Q1"], rows["2024Q2"], rows["2025Q1"]
    assert (q1.n, q1.defaults, q1.observed_rate) == (3, 1, pytest.approx(1 / 3))
    assert q1.mean_pd == pytest.approx(0.3) and q1.auc == pytest.approx(1.0)
    assert q1.jeffreys_p == pytest.approx(stats.beta.cdf(0.3, 1.5, 2.5))
    # two defaults out of two at a mean PD of 0.2: Beta(2.5, 0.5) CDF at 0.2, far below 0.05
    assert (q2.n, q2.defaults, q2.auc) == (2, 2, None) and q2.mean_pd == pytest.approx(0.2)
    assert q2.jeffreys_p == pytest.approx(stats.beta.cdf(0.2, 2.5, 0.5)) and q2.flagged
    assert (q5.n, q5.defaults, q5.flagged) == (1, 0, False)
    assert report.flagged == ["2024Q2"]
    months = vintage.vintage_report(dates, labels, pds, period="month")
    assert [c.cohort for c in months.cohorts] == [
        "2024-01",
        "2024-02",
        "2024-03",
        "2024-04",
        "2024-06",
        "2025-01",
    ]
    years = vintage.vintage_report(dates, labels, pds, period="year")
    assert [(c.cohort, c.n) for c in years.cohorts] == [("2024", 5), ("2025", 1)]


def test_a_bad_or_missing_date_is_named_by_row_and_value():
    dates = pd.Series(["2024-01-15", "15/01/2024", None, "2024-02-30"], name="booked_on")
    expected = (r"data.csv: column 'booked_on' row 3 value '15/01/2024', row 4 value None, "
                r"row 5 value '2024-02-30' are not a date \(YYYY-MM-DD\)")  # fmt: skip
    with pytest.raises(DataError, match=expected):
        vintage.parse_dates(dates, first_row=2, where="data.csv")
    import datetime as dt

    timestamps = pd.Series(pd.to_datetime(["2024-01-15", "2024-05-01"]), name="d")
    dates32 = pd.Series([dt.date(2024, 1, 15), dt.date(2024, 5, 1)], name="d")  # a Parquet date32 column
    for typed in (timestamps, dates32):
        assert vintage.cohort_labels(vintage.parse_dates(typed), "quarter").tolist() == ["2024Q1", "2024Q2"]


def test_the_out_of_time_split_holds_out_the_latest_dates_whole():
    frame = synthetic.with_origination_dates(pd.DataFrame({"x": range(1000)}), seed=3)
    held, cutoff = vintage.out_of_time_split(frame["origination_date"], 0.25)
    train_dates, held_dates = frame["origination_date"][~held], frame["origination_date"][held]
    assert train_dates.max() < cutoff <= held_dates.min()  # ISO strings order as dates
    assert 0.2 <= held.mean() <= 0.3
    with pytest.raises(DataError, match="cannot hold out 25% of the rows by date - 1 distinct date"):
        vintage.out_of_time_split(pd.Series(["2024-01-01"] * 10, name="d"), 0.25)


def test_backtest_flags_the_seeded_under_estimated_cohort(german_model_dir, tmp_path):
    """A dated german_credit whose last origination quarter defaults far more than before: the
    model's PDs under-estimate that cohort, and the Jeffreys test must say so (exit 3)."""
    frame = synthetic.with_origination_dates(pd.read_csv(GERMAN_CSV), start="2023-01-01", months=24, seed=7)
    late = frame["origination_date"] >= "2024-10-01"
    flip = late & (frame["default"] == 0) & (np.random.default_rng(1).random(len(frame)) < 0.7)
    frame.loc[flip, "default"] = 1  # the seeded miscalibration: most of 2024Q4 defaults
    data = tmp_path / "dated.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "backtest"
    argv = ["backtest", "--model", str(german_model_dir), "--data", str(data), "--date-column",
            "origination_date", "--period", "quarter", "--alpha", "0.01", "-o", str(out),
            "--chunk-rows", "300"]  # fmt: skip
    assert cli.main([*argv, "--fail-on-flag"]) == cli.EXIT_REJECTED
    report = json.loads((out / "vintage.json").read_text())
    cohorts = {c["cohort"]: c for c in report["cohorts"]}
    assert list(cohorts) == [f"{y}Q{q}" for y in (2023, 2024) for q in (1, 2, 3, 4)]
    assert sum(c["n"] for c in cohorts.values()) == 1000  # chunked reading lost no row
    assert "2024Q4" in report["flagged"] and cohorts["2024Q4"]["jeffreys_p"] < 1e-6
    assert cohorts["2024Q4"]["observed_rate"] > 0.7 > cohorts["2024Q4"]["mean_pd"]
    assert len(report["flagged"]) < len(cohorts)
    assert "| 2024Q4 |" in (out / "vintage.md").read_text()
    assert (out / "vintage.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cli.main(argv) == cli.EXIT_OK  # without --fail-on-flag the table is a report


def test_a_failed_write_leaves_no_partial_report(tmp_path, monkeypatch):
    """The table and its picture land together or not at all."""
    dates = pd.Series(["2024-01-15", "2024-04-01"], name="d")
    report = vintage.vintage_report(dates, np.array([1, 0]), np.array([0.4, 0.2]))

    def broken(*args):
        raise OSError("No space left on device")

    monkeypatch.setattr(vintage, "plot", broken)
    with pytest.raises(OSError, match="No space left"):
        vintage.write(report, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []  # no json/md without its picture, no staging left
    monkeypatch.undo()
    written = vintage.write(report, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "vintage.json",
        "vintage.md",
        "vintage.png",
    ]
    assert all(p.exists() for p in written.values())


# --- the spec's origination_date through the pipeline's steps: typing, validation, split, evaluation


def _dated_spec(tmp_path):
    """german_credit's spec with an origination date, written beside nothing else (no curated
    schema: validation infers one and imposes the spec on it)."""
    import yaml

    from tests.helpers import GERMAN_SPEC

    raw = yaml.safe_load(GERMAN_SPEC.read_text())
    raw.pop("data_file", None)
    raw["origination_date"] = "origination_date"
    path = tmp_path / "dated.spec.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _dated_csv(tmp_path, edit=None):
    frame = synthetic.with_origination_dates(pd.read_csv(GERMAN_CSV), start="2023-01-01", months=24, seed=7)
    if edit:
        edit(frame)
    path = tmp_path / "dated.csv"
    frame.to_csv(path, index=False)
    return path


def test_typed_rows_carry_the_origination_date_as_iso_text_and_name_a_bad_one(tmp_path):
    import datetime as dt

    from credit_risk.spec import feature_spec, values

    spec = feature_spec.load(_dated_spec(tmp_path))
    frame = pd.read_csv(_dated_csv(tmp_path), dtype=str).head(3)
    typed = values.typed(frame, spec, "dated.csv", 1, line_offset=1)
    assert (
        list(typed.columns) == spec.columns
        and typed["origination_date"].tolist() == frame["origination_date"].tolist()
    )
    objects = frame.assign(
        origination_date=[dt.date(2024, 1, 5), dt.date(2024, 2, 29), dt.date(2023, 12, 31)]
    )
    assert values.typed(objects, spec, "db", 1)["origination_date"].tolist() == [
        "2024-01-05", "2024-02-29", "2023-12-31",
    ]  # fmt: skip
    bad = frame.assign(origination_date=["2024-01-05", "05/01/2024", None])
    expected = (r"dated.csv: column 'origination_date' row 2 \(file line 3\) value '05/01/2024', "
                r"row 3 \(file line 4\) value None are not a date \(YYYY-MM-DD\)")  # fmt: skip
    with pytest.raises(DataError, match=expected):
        values.typed(bad, spec, "dated.csv", 1, line_offset=1)
    missing = frame.drop(columns=["origination_date"])
    with pytest.raises(DataError, match=r"column\(s\) \['origination_date'\] named by feature spec"):
        values.typed(missing, spec, "dated.csv", 1)


def test_validation_checks_every_origination_date(tmp_path):
    from credit_risk.dataset import data
    from credit_risk.dataset.validation import validate
    from credit_risk.spec import feature_spec

    spec = feature_spec.load(_dated_spec(tmp_path))
    good = _dated_csv(tmp_path)
    result = validate(str(good), spec, str(tmp_path / "ok"))
    assert result.passed, result.summary()

    def spoil(frame):
        frame.loc[4, "origination_date"] = "2024-13-01"
        frame.loc[9, "origination_date"] = None

    bad = _dated_csv(tmp_path, spoil)
    problems = {p.kind: p.message for p in data.find_problems(data.read_raw(str(bad)), spec)}
    assert problems == {
        "bad_date": "column 'origination_date' is the origination date in the spec: every row needs a date "
        "(YYYY-MM-DD), but it is missing or not a date at row 5 (file line 6) value '2024-13-01', "
        "row 10 (file line 11) value '<missing>'"
    }
    result = validate(str(bad), spec, str(tmp_path / "bad"))
    assert not result.passed and any(
        a.kind == "bad_date" and a.column == "origination_date" and a.blocking for a in result.anomalies
    )


def test_the_split_holds_out_the_latest_originations_in_memory_and_streamed(tmp_path):
    from credit_risk import steps

    spec, csv = str(_dated_spec(tmp_path)), str(_dated_csv(tmp_path))
    splits = {}
    for stream in (False, True):
        train, held = tmp_path / f"train-{stream}.parquet", tmp_path / f"eval-{stream}.parquet"
        n_train, n_eval = steps.split_step(csv, spec, 0.25, 1, str(train), str(held), stream=stream)
        t, h = pd.read_parquet(train), pd.read_parquet(held)
        assert (len(t), len(h)) == (n_train, n_eval) and n_train + n_eval == 1000
        assert t["origination_date"].max() < h["origination_date"].min()  # out of time: no overlap
        assert 0.2 <= n_eval / 1000 <= 0.3
        splits[stream] = sorted(map(tuple, h.astype(str).to_numpy()))
    assert splits[False] == splits[True]  # one cutoff rule, whether the rows are loaded or streamed
    with pytest.raises(DataError, match="eval_fraction must be in"):
        steps.split_step(csv, spec, 0.9, 1, str(tmp_path / "a.csv"), str(tmp_path / "b.csv"))


def test_date_counts_place_the_cutoff_of_the_sorted_rows_chunk_by_chunk():
    dates = pd.Series(["2024-01-03"] * 5 + ["2024-01-01"] * 3 + ["2024-01-02"] * 2, name="d")
    counts = vintage.DateCounts("d")
    for start in range(0, len(dates), 3):  # chunked: the same as all at once
        counts.add(dates.iloc[start : start + 3])
    # sorted: 01 01 01 02 02 03 03 03 03 03; holding out 40% starts at the 7th row: 2024-01-03
    assert counts.cutoff(0.4) == "2024-01-03"  # held out: the five rows of 2024-01-03
    assert counts.cutoff(0.6) == counts.cutoff(0.7) == "2024-01-02"  # one day's rows stay together
    assert vintage.out_of_time_split(dates, 0.4)[1] == counts.cutoff(0.4)
    with pytest.raises(DataError, match="cannot hold out 80% of the rows by date - 3 distinct date"):
        counts.cutoff(0.8)


def test_evaluation_backtests_the_held_out_cohorts_and_the_gate_flags_the_seeded_one(
    german_model_dir, tmp_path
):
    """The held-out (latest) originations by quarter in the evidence, the report, the model card
    and the gate: a last quarter that defaults far more than its PDs allow fails its check."""
    from credit_risk import steps
    from credit_risk.evidence import gate

    spec = str(_dated_spec(tmp_path))

    def seed_late_defaults(frame):
        late = frame["origination_date"] >= "2024-10-01"
        flip = late & (frame["default"] == 0) & (np.random.default_rng(1).random(len(frame)) < 0.7)
        frame.loc[flip, "default"] = 1

    csv = str(_dated_csv(tmp_path, seed_late_defaults))
    steps.split_step(csv, spec, 0.25, 1, str(tmp_path / "train.parquet"), str(tmp_path / "eval.parquet"))

    def run(name, config):
        out = tmp_path / name
        out.mkdir()
        files = [str(out / n) for n in ("approval.json", "card.md", "report.html")]
        return steps.evaluate_step(
            str(german_model_dir), str(tmp_path / "eval.parquet"), spec, config, *files
        ), out

    result, out = run("judged", gate.GateConfig())
    cohorts = {c.cohort: c for c in result.vintage.cohorts}
    assert "2024Q4" in cohorts and "2024Q4" in result.vintage.flagged
    assert min(cohorts) >= "2024Q2" and result.vintage.out_of_time_cutoff >= "2024-04-01"
    assert sum(c.n for c in cohorts.values()) == len(pd.read_parquet(tmp_path / "eval.parquet"))
    checks = [c for c in result.decision.checks if c.name == "min_cohort_p_value"]
    assert [c.group for c in checks] == list(cohorts)
    assert not result.decision.approved
    assert any(
        r.startswith("jeffreys_p [2024Q4] = ") and r.endswith(": FAIL") for r in result.decision.reasons
    )
    approval = json.loads((out / "approval.json").read_text())
    assert approval["vintage"]["flagged"] == result.vintage.flagged
    assert "Vintage back-test (out of time" in (out / "report.html").read_text()
    assert (
        "## Vintage back-test" in (out / "card.md").read_text()
        and "| 2024Q4 |" in (out / "card.md").read_text()
    )
    reported, _ = run("reported", gate.GateConfig(report_only=("min_cohort_p_value",)))
    assert not any("2024Q4" in r for r in reported.decision.reasons)
    assert all(
        "reported, not judged" in c.note for c in reported.decision.checks if c.name == "min_cohort_p_value"
    )
    with pytest.raises(Exception, match="vintage_period must be one of"):
        gate.GateConfig(vintage_period="week")


# --- cumulative default curves -----------------------------------------------------------------


def test_default_curves_match_a_hand_computed_table_and_name_a_bad_month():
    dates = pd.Series(["2024-01-05", "2024-02-10", "2024-03-01", "2024-03-31", "2024-04-02", "2024-05-01"],
                      name="opened")  # fmt: skip
    months = pd.Series([1, None, 3, 5, 2, None], name="to_default")
    curves = vintage.default_curves(dates, months, period="quarter", horizon=3)
    assert curves.cohorts == ["2024Q1", "2024Q2"] and curves.loans == [4, 2]
    # Q1: one default in month 1, one in month 3, one after the horizon (month 5): 1/4, 1/4, 2/4
    assert curves.cumulative == [[0.25, 0.25, 0.5], [0.0, 0.5, 0.5]]
    assert "| 2024Q1 | 4 | 0.2500 | 0.5000 |" in curves.markdown()  # months 1 and 3 shown
    bad = pd.Series([1, 0, 2.5, None, "x", 3], name="to_default")
    expected = (r"column 'to_default' row 2 value 0, row 3 value 2.5, row 5 value 'x' are not a whole number "
                r"of months >= 1 \(or empty: no default\)")  # fmt: skip
    with pytest.raises(DataError, match=expected):
        vintage.default_curves(dates, bad)


def test_default_curves_of_the_generated_history_from_the_cli(tmp_path):
    from credit_risk.history import generate, schema

    raw = generate.generate(tmp_path / "raw", records=30_000, seed=2).path
    apps = pd.read_parquet(f"{raw}/{schema.APPLICATIONS}")
    defaulted = apps["default"] == 1
    months = apps[schema.MONTHS_TO_DEFAULT]
    assert months[defaulted].between(1, 12).all() and months[~defaulted].isna().all()
    out = tmp_path / "curves"
    data = f"{raw}/{schema.APPLICATIONS}"
    assert cli.main(["default-curves", "--data", data, "-o", str(out), "--chunk-rows", "1000"]) == cli.EXIT_OK
    curves = json.loads((out / "default_curves.json").read_text())
    assert sum(curves["loans"]) == len(apps)  # chunked reading lost no row
    quarters = pd.PeriodIndex(apps["application_date"], freq="Q").astype(str)
    for name, n, curve in zip(curves["cohorts"], curves["loans"], curves["cumulative"], strict=True):
        assert curve == sorted(curve) and len(curve) == 12  # cumulative: never falls
        assert curve[-1] == pytest.approx(
            apps["default"][quarters == name].mean(), abs=1e-6
        )  # all by month 12
        assert n == int((quarters == name).sum())
    assert (out / "default_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| month 1 | month 3 | month 6 | month 9 | month 12 |" in (out / "default_curves.md").read_text()
