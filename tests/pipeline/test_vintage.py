"""Out-of-time / vintage back-testing (credit_risk/vintage.py, ``credit-risk backtest``) against
hand-computed tables and a seeded under-estimated cohort the test must flag."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from credit_risk import cli, synthetic, vintage
from credit_risk.errors import DataError
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
