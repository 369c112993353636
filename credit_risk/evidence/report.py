"""The evaluation step's human-readable evidence: the HTML evaluation report (plots) and the
Markdown model card (the validation and monitoring reports are ``validation_report`` and
``monitoring_report``, each beside the module it reports on).

Both are rendered by the Kubeflow UI (HTML / Markdown artifacts). Plots are PNGs embedded as data
URIs so the report is one self-contained file.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np

from credit_risk.evidence import gate, metrics, vintage
from credit_risk.evidence.evaluation import EvaluationResult
from credit_risk.figures import png_data_uri as _png
from credit_risk.spec.feature_spec import FeatureSpec


def _plots(r: EvaluationResult) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y, s = r.y_true, r.y_score
    out = {}
    fig, ax = plt.subplots(figsize=(4.5, 4))
    fpr, tpr, _ = metrics.roc_curve(y, s)
    ax.plot(fpr, tpr, label=f"challenger AUC {r.metrics['auc']:.3f}")
    if r.champion_score is not None and r.champion_metrics is not None:
        cf, ct, _ = metrics.roc_curve(y, r.champion_score)
        ax.plot(cf, ct, "--", label=f"champion AUC {r.champion_metrics['auc']:.3f}")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate (defaults caught)", title="ROC")
    ax.legend(loc="lower right")
    out["ROC curve"] = _png(fig)

    fig, ax = plt.subplots(figsize=(4.5, 4))
    grid = np.linspace(0, 1, 201)
    cdf_bad = np.searchsorted(np.sort(s[y == 1]), grid, side="right") / max((y == 1).sum(), 1)
    cdf_good = np.searchsorted(np.sort(s[y == 0]), grid, side="right") / max((y == 0).sum(), 1)
    k = int(np.argmax(np.abs(cdf_good - cdf_bad)))
    ax.plot(grid, cdf_good, label="non-defaults")
    ax.plot(grid, cdf_bad, label="defaults")
    ax.vlines(grid[k], cdf_bad[k], cdf_good[k], colors="red", label=f"KS {r.metrics['ks']:.3f}")
    ax.set(xlabel="PD", ylabel="cumulative share", title="KS: score CDF by class")
    ax.legend(loc="lower right")
    out["KS curve"] = _png(fig)

    fig, ax = plt.subplots(figsize=(4.5, 4))
    observed, predicted, counts = r.calibration
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect")
    ax.plot(predicted, observed, "o-", label=f"model (ECE {r.metrics['ece']:.3f})")
    for x, yy, n in zip(predicted, observed, counts, strict=True):
        ax.annotate(str(int(n)), (x, yy), fontsize=7, xytext=(3, -9), textcoords="offset points")
    ax.set(xlabel="mean predicted PD", ylabel="observed default rate", title="Calibration (rows per bin)")
    ax.legend(loc="upper left")
    out["Calibration"] = _png(fig)

    fig, ax = plt.subplots(figsize=(4.5, 4))
    bins = np.linspace(0, 1, 26).tolist()
    ax.hist(s[y == 0], bins=bins, alpha=0.6, label="non-defaults", density=True)
    ax.hist(s[y == 1], bins=bins, alpha=0.6, label="defaults", density=True)
    ax.axvline(r.operating_threshold, color="black", linestyle="--", label="operating threshold")
    ax.set(xlabel="PD", ylabel="density", title="Score distribution by class")
    ax.legend()
    out["Score distribution"] = _png(fig)
    if r.grades is not None and r.grades.populated():
        out["Rating grades"] = _grade_plot(r.grades)
    if r.vintage is not None and r.vintage.cohorts:
        out["Vintage back-test"] = _png(vintage.figure(r.vintage))
    return out


def _grade_plot(grades: Any) -> str:
    """Observed default rate per grade with its 95% Jeffreys interval, against the grade's PD."""
    import matplotlib.pyplot as plt
    from scipy import stats

    rows = grades.populated()
    x = np.arange(len(rows))
    # Jeffreys interval, with the usual ends: 0 when there is no default, 1 when all defaulted
    lo = [
        0.0 if r.defaults == 0 else stats.beta.ppf(0.025, r.defaults + 0.5, r.n - r.defaults + 0.5)
        for r in rows
    ]
    hi = [
        1.0 if r.defaults == r.n else stats.beta.ppf(0.975, r.defaults + 0.5, r.n - r.defaults + 0.5)
        for r in rows
    ]
    observed = [r.observed_rate for r in rows]
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.bar(x, [r.mean_pd for r in rows], color="#c6dbef", label="grade PD (mean model PD)")
    ax.errorbar(
        x,
        observed,
        yerr=[np.subtract(observed, lo), np.subtract(hi, observed)],
        fmt="o",
        color="#a11",
        capsize=3,
        label="observed rate, 95% Jeffreys",
    )
    ax.set_xticks(x, [f"{r.grade}\n{r.n}" for r in rows], fontsize=7)
    ax.set(ylabel="default rate", title="Rating grades (rows per grade)")
    ax.legend(loc="upper left", fontsize=8)
    return _png(fig)


def _grade_rows_html(grades: Any) -> str:
    rows = []
    for g in grades.rows:
        weak = not math.isnan(g.jeffreys_p) and g.jeffreys_p < 0.05
        rows.append(
            f"<tr{' class=bad' if weak else ''}><td>{g.grade}</td><td>[{g.pd_low:.4g}, {g.pd_high:.4g})</td>"
            f"<td>{g.n}</td><td>{g.defaults}</td><td>{_fmt(g.mean_pd)}</td><td>{_fmt(g.observed_rate)}</td>"
            f"<td>{_fmt(g.jeffreys_p)}</td><td>{_fmt(g.binomial_p)}</td></tr>"
        )
    return "\n".join(rows)


def _rating_html(r: EvaluationResult) -> str:
    if r.grades is None:
        return "<h2>Rating grades</h2><p>The model has no master scale (spec <code>master_scale</code>).</p>"
    g = r.grades
    order = (
        "observed default rates rise with the grade"
        if g.monotone_observed
        else ("observed default rate falls between " + ", ".join(html.escape(i) for i in g.inversions))
    )
    return f"""<h2>Rating grades (master scale: {html.escape(g.scale.source)})</h2>
<p>One-sided tests for an underestimated PD per grade (small p-value = more defaults than the grade's
PD explains): Jeffreys, Beta(D+&frac12;, N&minus;D+&frac12;) CDF at the grade PD, and the exact binomial
P(X &ge; D). Herfindahl index {_fmt(g.herfindahl)}; {order}.</p>
<table><tr><th>grade</th><th>PD band</th><th>rows</th><th>defaults</th><th>grade PD</th><th>observed rate</th>
<th>Jeffreys p</th><th>binomial p</th></tr>
{_grade_rows_html(g)}</table>"""


def _monotonicity_html(r: EvaluationResult) -> str:
    if not r.sweeps:
        return "<h2>Monotone risk drivers</h2><p>No feature declares a monotone direction.</p>"
    rows = "".join(
        f"<tr{' class=bad' if s.worst_violation > 0.0 else ''}><td>{html.escape(s.feature)}</td>"
        f"<td>{s.monotone}</td><td>{len(s.grid)}</td><td>{s.violating} / {s.applicants}</td>"
        f"<td>{_fmt(s.worst_violation)}</td><td>"
        + (f"row {s.worst_row}: {s.worst_from:.4g} &rarr; {s.worst_to:.4g}" if s.worst_row >= 0 else "")
        + "</td></tr>"
        for s in r.sweeps
    )
    return f"""<h2>Monotone risk drivers</h2>
<p>Each declared feature swept over its held-out quantiles for sampled applicants, every other input
kept: the worst PD move against the declared direction (0 = monotone).</p>
<table><tr><th>feature</th><th>direction</th><th>grid points</th><th>applicants violating</th>
<th>worst violation (PD)</th><th>where</th></tr>{rows}</table>"""


def _vintage_html(r: EvaluationResult) -> str:
    if r.vintage is None:
        return (
            "<h2>Vintage back-test</h2><p>The data has no origination date (spec "
            "<code>origination_date</code>): the held-out rows were drawn at random, not out of time.</p>"
        )
    v = r.vintage
    rows = "".join(
        f"<tr{' class=bad' if c.flagged else ''}><td>{html.escape(c.cohort)}</td><td>{c.n}</td>"
        f"<td>{c.defaults}</td><td>{_fmt(c.observed_rate)}</td><td>{_fmt(c.mean_pd)}</td>"
        f"<td>{_fmt(c.auc)}</td><td>{_fmt(c.jeffreys_p)}</td></tr>"
        for c in v.cohorts
    )
    return f"""<h2>Vintage back-test (out of time, by origination {v.period} of <code>{html.escape(v.date_column)}</code>)</h2>
<p>The held-out rows are every loan originated on or after {html.escape(v.out_of_time_cutoff or "-")}; the
model learned only from earlier ones. Per cohort: one-sided Jeffreys test (small p-value = more defaults
than the PDs explain), flagged below {v.alpha:g}.</p>
<table><tr><th>cohort</th><th>loans</th><th>defaults</th><th>observed rate</th><th>mean PD</th><th>AUC</th>
<th>Jeffreys p</th></tr>{rows}</table>"""


def _fmt(v: float | None) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def _status(c: gate.Check) -> str:
    if c.note:
        return "skipped" if math.isnan(c.value) else "reported"
    return "pass" if c.passed else "FAIL"


def _checks_rows(decision: gate.Decision) -> str:
    rows = []
    for c in decision.checks:
        status = _status(c)
        cls = {"pass": "ok", "FAIL": "bad", "skipped": "skip", "reported": "skip"}[status]
        bar = "" if math.isnan(c.threshold) else f"{c.comparison} {c.threshold:.4g}"
        rows.append(
            f"<tr class='{cls}'><td>{html.escape(c.name)}</td><td>{html.escape(c.group)}</td>"
            f"<td>{_fmt(c.value)}</td><td>{bar}</td><td>{status}</td>"
            f"<td>{html.escape(c.note)}</td></tr>"
        )
    return "\n".join(rows)


def _recalibration_html(d: gate.Decision) -> str:
    rc = d.recalibration
    if not rc:
        return ""
    return (
        f"<h2>Recalibration evidence ({html.escape(rc['method'])})</h2><p>Calibration failed its check. "
        f"Fitted on {rc['fit_rows']} held-out rows, measured on the other {rc['test_rows']}: "
        f"ECE {_fmt(rc['ece_before'])} &rarr; {_fmt(rc['ece_after'])}, Brier {_fmt(rc['brier_before'])} "
        f"&rarr; {_fmt(rc['brier_after'])}, AUC {_fmt(rc['auc_before'])} &rarr; {_fmt(rc['auc_after'])}. "
        "The gate judged the model as exported; a recalibrated model is a new model for the gate.</p>"
    )


def html_report(r: EvaluationResult, spec: FeatureSpec) -> str:
    d = r.decision
    plots = "".join(
        f"<figure><img alt='{html.escape(k)}' src='{v}'><figcaption>{html.escape(k)}</figcaption></figure>"
        for k, v in _plots(r).items()
    )
    metric_rows = "".join(
        f"<tr><td>{k}</td><td>{_fmt(v)}</td><td>"
        + (f"[{_fmt(r.intervals[k][0])}, {_fmt(r.intervals[k][1])}]" if k in r.intervals else "")
        + (f"</td><td>{_fmt(r.champion_metrics.get(k))}" if r.champion_metrics else "</td><td>")
        + "</td></tr>"
        for k, v in r.metrics.items()
    )
    fair_rows = []
    for sl in r.fairness:
        for g in sl.groups:
            fair_rows.append(
                f"<tr><td>{html.escape(sl.slice)}{' (protected)' if sl.protected else ''}</td>"
                f"<td>{html.escape(g.group)}</td><td>{g.rows}{'' if g.included else ' (too few)'}</td>"
                f"<td>{_fmt(g.default_rate)}</td><td>{_fmt(g.mean_pd)}</td><td>{_fmt(g.approval_rate)}</td>"
                f"<td>{_fmt(g.auc)}</td></tr>"
            )
        fair_rows.append(
            f"<tr class='sum'><td colspan=7>{html.escape(sl.slice)}: disparate impact "
            f"{_fmt(sl.disparate_impact)}, AUC gap {_fmt(sl.auc_gap)} {html.escape(sl.note)}</td></tr>"
        )
    (tn, fp), (fn, tp) = r.confusion.tolist()
    verdict_cls = "ok" if d.approved else "bad"
    reasons = "".join(f"<li>{html.escape(x)}</li>" for x in d.reasons) or "<li>every check passed</li>"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Evaluation: {html.escape(spec.name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; }}
h1 {{ margin-bottom: 4px; }} table {{ border-collapse: collapse; margin: 8px 0 20px; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; font-size: 13px; text-align: left; }}
th {{ background: #f0f0f0; }} tr.ok td:nth-child(5) {{ color: #11772d; font-weight: bold; }}
tr.bad td {{ background: #fde8e8; }} tr.skip td {{ color: #777; }} tr.sum td {{ background: #f7f7f7; font-style: italic; }}
.verdict {{ display: inline-block; padding: 6px 14px; border-radius: 4px; font-size: 20px; font-weight: bold; }}
.verdict.ok {{ background: #dff5e3; color: #11772d; }} .verdict.bad {{ background: #fde8e8; color: #a11; }}
figure {{ display: inline-block; margin: 0 12px 12px 0; }} figcaption {{ text-align: center; font-size: 12px; }}
</style></head><body>
<h1>Evaluation report: {html.escape(spec.name)}</h1>
<p>Model <code>{html.escape(d.model_fingerprint)}</code> trained on <code>{html.escape(d.data_fingerprint)}</code>,
evaluated on {int(r.metrics["rows"])} held-out rows <code>{html.escape(d.eval_data_fingerprint)}</code> at {html.escape(d.timestamp)}.</p>
<div class="verdict {verdict_cls}">{d.decision.upper()}</div>
<ul>{reasons}</ul>
<h2>Gate checks</h2>
<table><tr><th>check</th><th>group</th><th>value</th><th>required</th><th>result</th><th>note</th></tr>
{_checks_rows(d)}</table>
<h2>Metrics (held-out)</h2>
<table><tr><th>metric</th><th>value</th><th>95% bootstrap CI</th><th>champion</th></tr>{metric_rows}</table>
{_recalibration_html(d)}
<p>Confusion matrix at PD &ge; {r.operating_threshold:g} predicted default:
TN {tn}, FP {fp}, FN {fn}, TP {tp}.</p>
<h2>Plots</h2>{plots}
<h2>Fairness and slices (approved = PD &lt; {r.operating_threshold:g})</h2>
<table><tr><th>slice</th><th>group</th><th>rows</th><th>default rate</th><th>mean PD</th><th>approval rate</th><th>AUC</th></tr>
{"".join(fair_rows)}</table>
{_rating_html(r)}
{_monotonicity_html(r)}
{_vintage_html(r)}
</body></html>
"""


def model_card(r: EvaluationResult, spec: FeatureSpec) -> str:
    d = r.decision
    hp = r.model_info.get("hyperparameters", {})
    inputs = ", ".join(f"`{f.name}`" for f in spec.model_features)
    protected = (
        ", ".join(
            f"`{f.name}`{'' if f.model_input else ' (not a model input)'}" for f in spec.protected_features
        )
        or "none declared"
    )
    lines = [
        f"# Model card: {spec.name} probability of default",
        "",
        f"**Approval: {d.decision.upper()}** ({d.timestamp})",
        "",
        "## Intended use",
        "Estimate the 12-month-style probability of default (PD) of a consumer-credit applicant from the "
        "application features below, to support - not replace - a credit decision and its adverse-action "
        "reasons. Not for: pricing outside the population it was trained on, employment or insurance "
        "decisions, or any use on the protected attributes.",
        "",
        "## Data",
        f"- Dataset `{spec.name}`: {spec.description}",
        f"- Training data fingerprint `{d.data_fingerprint}`; held-out evaluation data `{d.eval_data_fingerprint}` "
        f"({int(r.metrics['rows'])} rows, default rate {r.metrics['default_rate']:.3f}).",
        f"- Model inputs: {inputs}.",
        f"- Protected attributes: {protected}.",
        "",
        "## Model",
        f"- Wide-and-deep Keras classifier, preprocessing inside the SavedModel; fingerprint `{d.model_fingerprint}`.",
        f"- Hyperparameters: `{hp}`" if hp else "- Hyperparameters: not recorded.",
        "",
        "## Metrics (held-out)",
        "",
        "| metric | value | 95% CI |",
        "|---|---|---|",
    ]
    for k, v in r.metrics.items():
        ci = f"[{_fmt(r.intervals[k][0])}, {_fmt(r.intervals[k][1])}]" if k in r.intervals else ""
        lines.append(f"| {k} | {_fmt(v)} | {ci} |")
    lines += ["", "## Fairness", "", "| slice | disparate impact | AUC gap | note |", "|---|---|---|---|"]
    lines += [
        f"| {s.slice} | {_fmt(s.disparate_impact)} | {_fmt(s.auc_gap)} | {s.note} |" for s in r.fairness
    ]
    if r.grades is not None:
        g = r.grades
        lines += [
            "",
            f"## Rating grades ({g.scale.source}; Herfindahl {_fmt(g.herfindahl)})",
            "",
            "| grade | PD band | rows | defaults | grade PD | observed | Jeffreys p | binomial p |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {x.grade} | [{x.pd_low:.4g}, {x.pd_high:.4g}) | {x.n} | {x.defaults} | {_fmt(x.mean_pd)} | "
            f"{_fmt(x.observed_rate)} | {_fmt(x.jeffreys_p)} | {_fmt(x.binomial_p)} |"
            for x in g.rows
        ]
    if r.sweeps:
        lines += [
            "",
            "## Monotone risk drivers",
            "",
            "| feature | direction | violating | worst PD move |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {x.feature} | {x.monotone} | {x.violating}/{x.applicants} | {_fmt(x.worst_violation)} |"
            for x in r.sweeps
        ]
    if r.vintage is not None:
        lines += ["", *r.vintage.markdown().replace("# Vintage", "## Vintage", 1).splitlines()]
        lines.append(
            f"Out of time: every held-out loan originated on or after {r.vintage.out_of_time_cutoff}."
        )
    lines += ["", "## Approval", "", "| check | group | value | required | result |", "|---|---|---|---|---|"]
    for c in d.checks:
        status = _status(c)
        bar = "" if math.isnan(c.threshold) else f"{c.comparison} {c.threshold:.4g}"
        lines.append(f"| {c.name} | {c.group} | {_fmt(c.value)} | {bar} | {status} {c.note} |")
    lines += [""] + [f"- {x}" for x in d.reasons]
    if d.recalibration:
        rc = d.recalibration
        lines.append(
            f"- Calibration failed; {rc['method']} recalibration on half the held-out rows would move "
            f"ECE {_fmt(rc['ece_before'])} -> {_fmt(rc['ece_after'])} and Brier "
            f"{_fmt(rc['brier_before'])} -> {_fmt(rc['brier_after'])} (evidence only)."
        )
    if d.override:
        lines.append(
            f"- Override requested by **{d.override.approver}**: {d.override.rationale} "
            f"(allowed: {d.override.allowed}, applied: {d.override.applied})"
        )
    lines += [
        "",
        "## Limitations",
        "- Metrics come from one held-out split; the bootstrap intervals show their uncertainty.",
        "- Small groups (below the gate's minimum rows) are reported but not judged for fairness.",
        "- The PD is only as representative as the training population; monitor drift after deployment.",
    ]
    return "\n".join(lines) + "\n"
