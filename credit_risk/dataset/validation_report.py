"""The validate step's HTML report: verdict, anomaly table, per-feature summary with distribution
plots beside the baseline's, and TFDV's Facets overview."""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from credit_risk.figures import png_data_uri as _png


def _feature_stats(stats: Any) -> dict[str, Any]:
    return {".".join(f.path.step): f for f in stats.datasets[0].features} if stats and stats.datasets else {}


def _summary_cells(f: Any) -> str:
    if f is None:
        return "<td colspan=3>-</td>"
    if f.HasField("num_stats"):
        n = f.num_stats
        common = n.common_stats
        total = common.num_missing + common.num_non_missing
        missing = common.num_missing / total if total else 0.0
        return (
            f"<td>{missing:.1%}</td><td>mean {n.mean:.4g}, sd {n.std_dev:.4g}</td>"
            f"<td>{n.min:.4g} / {n.median:.4g} / {n.max:.4g}</td>"
        )
    s = f.string_stats
    common = s.common_stats
    total = common.num_missing + common.num_non_missing
    missing = common.num_missing / total if total else 0.0
    top = ", ".join(f"{html.escape(v.value)} ({v.frequency:.0f})" for v in s.top_values[:3])
    return f"<td>{missing:.1%}</td><td>{s.unique} values</td><td>{top}</td>"


def _histogram_png(name: str, current: Any, baseline: Any) -> str:
    """Distribution of one feature: this data vs the baseline (shares, not counts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.2, 1.6))
    for stats, label, color in ((current, "this data", "#1f77b4"), (baseline, "baseline", "#ff7f0e")):
        if stats is None:
            continue
        if stats.HasField("num_stats") and stats.num_stats.histograms:
            buckets = stats.num_stats.histograms[0].buckets
            counts = np.array([b.sample_count for b in buckets])
            edges = [b.low_value for b in buckets]
            ax.step(edges, counts / max(counts.sum(), 1), where="post", label=label, color=color)
        elif stats.HasField("string_stats"):
            top = stats.string_stats.top_values[:8]
            total = max(sum(v.frequency for v in stats.string_stats.top_values), 1)
            ax.plot(
                [v.value[:8] for v in top], [v.frequency / total for v in top], "o-", label=label, color=color
            )
            ax.tick_params(axis="x", labelrotation=60, labelsize=6)
    ax.set_title(name, fontsize=8)
    ax.tick_params(labelsize=6)
    if baseline is not None:
        ax.legend(fontsize=6)
    return _png(fig)


def validation_html(result: Any, stats: Any, baseline: Any, facets_html: str) -> str:
    """One self-contained page: verdict, anomaly table, per-feature summary with distribution plots
    (side by side with the baseline when there is one), then TFDV's Facets overview (which loads
    its viewer from the internet; the part above renders offline)."""
    current, base = _feature_stats(stats), _feature_stats(baseline)
    verdict = "passed" if result.passed else "FAILED"
    color = "#2e7d32" if result.passed else "#c62828"
    anomaly_rows = (
        "".join(
            f"<tr><td><code>{html.escape(a.column)}</code></td><td>{html.escape(a.kind)}</td>"
            f"<td>{'yes' if a.blocking else 'no (policy)'}</td><td>{html.escape(a.description)}</td></tr>"
            for a in result.anomalies
        )
        or "<tr><td colspan=4>none</td></tr>"
    )
    feature_rows = []
    for name in current:
        drift = result.drift.get(f"{name}:drift")
        drift_cell = (
            f"<td>{drift['measure']} {drift['value']:.3f} (limit {drift['threshold']:.2f})</td>"
            if drift
            else "<td>-</td>"
        )
        feature_rows.append(
            f"<tr><td><code>{html.escape(name)}</code></td>{_summary_cells(current[name])}"
            + (_summary_cells(base.get(name)) if base else "")
            + drift_cell
            + f"<td><img src='{_histogram_png(name, current[name], base.get(name))}'></td></tr>"
        )
    base_head = "<th>missing</th><th>baseline</th><th>min / median / max or top</th>" if base else ""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Data validation</title>
<style>body{{font-family:sans-serif;margin:24px}} table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:4px 6px;vertical-align:top}} th{{background:#f3f3f3}}
td:first-child{{max-width:200px;word-break:break-all}}</style></head><body>
<h1>Data validation: <span style="color:{color}">{verdict}</span></h1>
<p><code>{html.escape(result.data_uri)}</code>: {result.num_rows:,} rows x {result.num_columns} columns;
schema: {html.escape(result.schema_source)}{"; compared with the baseline statistics" if base else ""}.</p>
<h2>Anomalies</h2>
<table><tr><th>column</th><th>kind</th><th>fails step</th><th>description</th></tr>{anomaly_rows}</table>
<h2>Features</h2>
<table><tr><th>feature</th><th>missing</th><th>this data</th><th>min / median / max or top</th>{base_head}
<th>drift</th><th>distribution</th></tr>{"".join(feature_rows)}</table>
<h2>Facets overview</h2>
{facets_html}
</body></html>"""
