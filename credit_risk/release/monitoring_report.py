"""The monitoring step's outputs: ``monitoring.json``, the HTML report (PSI bars against the band
limits, the score's baseline vs current distribution) and the Markdown verdict."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from credit_risk.figures import png_data_uri as _png
from credit_risk.release import monitoring


def _psi_plots(result: Any) -> dict[str, str]:
    """PSI per column against the band limits, and the score's baseline vs current shares."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = {
        "score (PD)": result.score_psi,
        **dict(sorted(result.feature_psi.items(), key=lambda kv: kv[1])),
    }
    colors = {monitoring.STABLE: "#2e7d32", monitoring.WATCH: "#f9a825", monitoring.ACT: "#c62828"}
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(values) + 1.2))
    ax.barh(list(values), list(values.values()), color=[colors[monitoring.band(v)] for v in values.values()])
    for limit in (0.1, 0.25):
        ax.axvline(limit, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("PSI (dashed: 0.1 watch, 0.25 act)")
    ax.tick_params(axis="y", labelsize=8)
    plots = {"PSI by column": _png(fig)}
    dist = result.distributions[monitoring.SCORE]
    fig, ax = plt.subplots(figsize=(7, 3))
    x = np.arange(len(dist["bins"]))
    ax.bar(x - 0.2, dist["baseline"], width=0.4, label="baseline (training)")
    ax.bar(x + 0.2, dist["current"], width=0.4, label="current")
    ax.set_xticks(x, dist["bins"], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("share of rows")
    ax.set_title(f"PD distribution, PSI {result.score_psi:.4f}")
    ax.legend()
    plots["score distribution"] = _png(fig)
    return plots


def monitoring_html(result: Any) -> str:
    """The monitoring report: verdict, PSI table with bands, TFDV drift, plots (one self-contained file)."""
    plots = "".join(
        f"<figure><img alt='{html.escape(k)}' src='{v}'><figcaption>{html.escape(k)}</figcaption></figure>"
        for k, v in _psi_plots(result).items()
    )
    rows = [("<b>score (PD)</b>", result.score_psi, result.bands[monitoring.SCORE], None)]
    rows += [
        (html.escape(k), v, result.bands[k], result.tfdv_drift.get(k))
        for k, v in sorted(result.feature_psi.items(), key=lambda kv: -kv[1])
    ]
    body = "".join(
        f"<tr><td>{name}</td><td>{value:.4f}</td><td class='{b}'>{b}</td><td>"
        + (
            f"{d['measure']} {d['value']:.4f} / {d['threshold']:.2f}{' <b>drift</b>' if d['drifted'] else ''}"
            if d
            else ""
        )
        + "</td></tr>"
        for name, value, b, d in rows
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Monitoring {html.escape(result.model_version)}</title>
<style>body{{font-family:sans-serif;margin:24px}} table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 8px}} .stable{{background:#e8f5e9}} .watch{{background:#fff8e1}}
.act{{background:#ffebee}} .verdict{{font-size:22px;font-weight:bold;padding:8px;display:inline-block}}
figure{{display:inline-block;margin:8px}}</style></head><body>
<h1>Population stability: model <code>{html.escape(result.model_version)}</code></h1>
<div class="verdict {result.verdict}">{result.verdict.upper()}</div>
<p>{result.current_rows} current rows (<code>{html.escape(result.current_uri)}</code>) against a uniform sample of
{result.baseline_rows_sampled} baseline rows (<code>{html.escape(result.baseline_uri)}</code>).
PSI bands: &lt; 0.1 stable, 0.1-0.25 watch, &gt; 0.25 act. TFDV drift: Jensen-Shannon divergence (numeric),
L-infinity distance (categorical), thresholds from the feature spec.</p>
<h2>Plots</h2>{plots}
<h2>PSI and drift by column</h2>
<table><tr><th>column</th><th>PSI</th><th>band</th><th>TFDV drift (measure, value / threshold)</th></tr>{body}</table>
</body></html>
"""


def verdict_markdown(result: monitoring.MonitoringResult) -> str:
    lines = [
        f"# Monitoring verdict: **{result.verdict.upper()}**",
        "",
        f"Model `{result.model_version}`; {result.current_rows} current rows vs a "
        f"{result.baseline_rows_sampled}-row baseline sample. "
        "PSI bands: < 0.1 stable, 0.1-0.25 watch, > 0.25 act.",
        "",
        "| column | PSI | band | TFDV drift (measure, value / threshold) |",
        "|---|---|---|---|",
        f"| **score (PD)** | {result.score_psi:.4f} | {result.bands[monitoring.SCORE]} | |",
    ]
    for name, value in sorted(result.feature_psi.items(), key=lambda kv: -kv[1]):
        d = result.tfdv_drift.get(name)
        drift = (
            f"{d['measure']} {d['value']:.4f} / {d['threshold']:.2f}{' DRIFT' if d['drifted'] else ''}"
            if d
            else ""
        )
        lines.append(f"| {name} | {value:.4f} | {result.bands[name]} | {drift} |")
    return "\n".join(lines) + "\n"


def write_outputs(result: monitoring.MonitoringResult, out_dir: str | Path) -> dict[str, Path]:
    """monitoring.json, the HTML report (PSI bars, score distributions) and the Markdown verdict."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "result": out / monitoring.RESULT_FILE,
        "report": out / monitoring.REPORT_FILE,
        "verdict": out / monitoring.VERDICT_FILE,
    }
    paths["result"].write_text(json.dumps(result.to_dict(), indent=2))
    paths["report"].write_text(monitoring_html(result))
    paths["verdict"].write_text(verdict_markdown(result))
    return paths
