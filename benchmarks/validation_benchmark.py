"""Validation benchmark: TFDV statistics of synthetic credit rows, our fast path vs TFDV's own calls.

Generates german_credit-shaped CSVs (credit_risk.synthetic: real rows resampled, numerics jittered;
same columns and schema) of each size, then measures - every measurement in its own child process,
so its peak memory (max RSS, including its worker processes) is its own:

  * fast path: ``data_stats.fast_statistics`` (CSV read in bounded batches, features split across
    ``--processes`` forked workers), at every size - rows/s and peak memory; and on the same rows
    as typed Parquet shards (written before the clock, like a snapshot from the ingest step);
  * TFDV's single-process in-memory calls on the same rows (sizes up to --max-in-memory):
    ``tfdv.generate_statistics_from_dataframe`` and the Arrow in-memory call
    (``stats_impl.generate_statistics_in_memory`` on one RecordBatch); their data is read (pandas)
    before the clock starts, so they get the compute-only time, the read is reported apart; the
    Arrow call is also timed from the DataFrame (``RecordBatch.from_pandas`` + canonicalize + call),
    which is how a caller holding the data makes it;
  * the Beam DirectRunner (``data_stats.beam_statistics``, multi-process, 2 workers) on the
    smallest size.

and checks the fast path's statistics against the Arrow in-memory call's (same counts, moments,
extremes, top values). Targets (issue 9): fast path >= 1.8x the in-memory call on 1M rows,
>= 20x the Beam DirectRunner, peak memory flat from 1M to 10M rows.

Usage (pipeline environment; 10M rows need ~2.5 GB of disk under --workdir):
  .venvs/pipeline/bin/python benchmarks/validation_benchmark.py [--rows 100000 1000000 10000000]
      [--processes 2] [--max-in-memory 1000000] [--workdir /tmp] [--tag NAME]
Prints a table and writes benchmarks/results/validation[-TAG].json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SPEC = ROOT / "data" / "german_credit.spec.yaml"

# Each measurement runs as: python validation_benchmark.py --measure KIND CSV ROWS PROCESSES
CHILD = r"""
import json, resource, sys, time
kind, csv, rows, processes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
from credit_risk import data, data_stats, feature_spec
import tensorflow_data_validation  # imported before the clock starts, as in a long-lived step
spec = feature_spec.load(sys.argv[5])
out = {"kind": kind, "rows": rows}
if kind in ("fast", "fast_parquet"):
    source = csv if kind == "fast" else csv.replace(".csv", "-parquet")
    t = time.perf_counter(); stats = data_stats.fast_statistics(source, spec, processes=processes)
    out["seconds"] = time.perf_counter() - t
elif kind == "beam":
    args = ["--runner=DirectRunner", "--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    t = time.perf_counter(); stats = data_stats.beam_statistics(csv, spec, args)
    out["seconds"] = time.perf_counter() - t
else:
    import pyarrow as pa
    import tensorflow_data_validation as tfdv
    from tensorflow_data_validation.statistics import stats_impl
    from tfx_bsl.arrow import table_util
    t = time.perf_counter()
    frame = data.typed_frame(data.read_raw(csv), spec)
    frame = frame.astype({c: object for c in frame.columns if frame[c].dtype == object})
    frame = frame.where(frame.notna(), None)
    out["read_seconds"] = time.perf_counter() - t
    if kind == "dataframe":
        t = time.perf_counter(); stats = tfdv.generate_statistics_from_dataframe(frame)
    elif kind == "arrow_from_frame":  # the in-memory call as a caller holding a DataFrame makes it
        t = time.perf_counter()
        batch = table_util.CanonicalizeRecordBatch(pa.RecordBatch.from_pandas(frame, preserve_index=False))
        stats = stats_impl.generate_statistics_in_memory(batch, tfdv.StatsOptions())
    else:
        batch = table_util.CanonicalizeRecordBatch(pa.RecordBatch.from_pandas(frame, preserve_index=False))
        t = time.perf_counter(); stats = stats_impl.generate_statistics_in_memory(batch, tfdv.StatsOptions())
    out["seconds"] = time.perf_counter() - t
out["rows_per_second"] = rows / out["seconds"]
self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
out["peak_rss_mb"] = max(self_rss, child_rss) / 1024
feats = {".".join(f.path.step): f for f in stats.datasets[0].features}
summary = {}
for name, f in feats.items():
    if f.HasField("num_stats"):
        n = f.num_stats
        summary[name] = [n.common_stats.num_non_missing, n.common_stats.num_missing, round(n.mean, 6),
                         round(n.std_dev, 6), n.min, n.max]
    else:
        s = f.string_stats
        summary[name] = [s.common_stats.num_non_missing, s.common_stats.num_missing, s.unique,
                         [(v.value, v.frequency) for v in s.top_values]]
out["summary"] = summary
print(json.dumps(out))
"""


def generate(rows: int, workdir: Path) -> Path:
    from credit_risk import data, feature_spec, synthetic

    path = workdir / f"german-{rows}.csv"
    if path.exists():
        return path
    spec = feature_spec.load(SPEC)
    reference = data.load_dataset(spec.data_path(), spec)
    t = time.perf_counter()
    partial = path.with_suffix(".partial")
    for i, chunk in enumerate(synthetic.chunks(reference, spec, rows, seed=1, chunk_rows=500_000)):
        ints = [f.name for f in spec.features if f.is_numeric]
        chunk[ints] = chunk[ints].round(0)
        chunk.to_csv(partial, mode="w" if i == 0 else "a", header=i == 0, index=False, float_format="%.0f")
    partial.rename(path)
    print(
        f"generated {rows:,} rows ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.0f}s",
        flush=True,
    )
    return path


def to_parquet(csv: Path, spec_path: Path = SPEC) -> Path:
    """The same rows as Parquet shards of 250k rows, typed by the spec (not timed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from credit_risk import data_stats, feature_spec

    out = csv.with_name(csv.stem + "-parquet")
    if out.exists():
        return out
    spec = feature_spec.load(spec_path)
    partial = out.with_suffix(".partial")
    partial.mkdir(exist_ok=True)
    for i, batch in enumerate(data_stats.raw_batches(str(csv), batch_rows=250_000)):
        typed = pa.Table.from_batches([data_stats.typed_batch(batch, spec)])
        pq.write_table(typed, partial / f"part-{i:05d}.parquet")
    partial.rename(out)
    return out


def measure(kind: str, csv: Path, rows: int, processes: int) -> dict:
    cmd = [sys.executable, "-c", CHILD, kind, str(csv), str(rows), str(processes), str(SPEC)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} on {rows} rows failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"  {kind:>9} {rows:>11,} rows: {result['rows_per_second']:>11,.0f} rows/s, "
        f"peak {result['peak_rss_mb']:>6,.0f} MB",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--max-in-memory", type=int, default=1_000_000)
    parser.add_argument("--workdir", default=tempfile.gettempdir())
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    workdir = Path(args.workdir) / "credit-risk-validation-benchmark"
    workdir.mkdir(parents=True, exist_ok=True)
    sizes = sorted(args.rows)
    runs: list[dict] = []
    for rows in sizes:
        csv = generate(rows, workdir)
        runs.append(measure("fast", csv, rows, args.processes))
        if rows <= args.max_in_memory:
            to_parquet(csv)
            runs.append(measure("fast_parquet", csv, rows, args.processes))
            runs.append(measure("arrow", csv, rows, 1))
            runs.append(measure("arrow_from_frame", csv, rows, 1))
            runs.append(measure("dataframe", csv, rows, 1))
        if rows == sizes[0]:
            runs.append(measure("beam", csv, rows, 2))

    def find(kind: str, rows: int) -> dict | None:
        return next((r for r in runs if r["kind"] == kind and r["rows"] == rows), None)

    compare = max(r for r in sizes if r <= args.max_in_memory)
    fast, arrow, frame = find("fast", compare), find("arrow", compare), find("dataframe", compare)
    fast_pq, arrow_frame = find("fast_parquet", compare), find("arrow_from_frame", compare)
    beam, fast_small = find("beam", sizes[0]), find("fast", sizes[0])
    big = [find("fast", r) for r in sizes if r >= 1_000_000]
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "processes": args.processes,
        "runs": [{k: v for k, v in r.items() if k != "summary"} for r in runs],
        "compare_rows": compare,
        "fast_vs_arrow_in_memory": fast["rows_per_second"] / arrow["rows_per_second"]
        if fast and arrow
        else None,
        "fast_vs_dataframe": fast["rows_per_second"] / frame["rows_per_second"] if fast and frame else None,
        "fast_vs_arrow_including_read": (
            fast["rows_per_second"] / (compare / (arrow["seconds"] + arrow["read_seconds"]))
            if fast and arrow
            else None
        ),
        "fast_vs_beam": fast_small["rows_per_second"] / beam["rows_per_second"]
        if fast_small and beam
        else None,
        "fast_parquet_vs_arrow_in_memory": fast_pq["rows_per_second"] / arrow["rows_per_second"]
        if fast_pq and arrow
        else None,
        "fast_parquet_vs_arrow_from_frame": fast_pq["rows_per_second"] / arrow_frame["rows_per_second"]
        if fast_pq and arrow_frame
        else None,
        "fast_parquet_vs_dataframe": fast_pq["rows_per_second"] / frame["rows_per_second"]
        if fast_pq and frame
        else None,
        "same_statistics_as_arrow": fast["summary"] == arrow["summary"] if fast and arrow else None,
        "parquet_same_statistics_as_arrow": fast_pq["summary"] == arrow["summary"]
        if fast_pq and arrow
        else None,
        "peak_mb_1m_to_largest": [b["peak_rss_mb"] for b in big if b],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"validation{'-' + args.tag if args.tag else ''}.json"
    path.write_text(json.dumps(result, indent=2))

    def ratio(key: str) -> str:
        return f"{result[key]:.2f}x" if result[key] is not None else "n/a"

    print(
        f"\non {compare:,} rows: fast path {ratio('fast_vs_arrow_in_memory')} the Arrow in-memory call "
        f"(target >= 1.8x), {ratio('fast_vs_dataframe')} generate_statistics_from_dataframe, "
        f"{ratio('fast_vs_arrow_including_read')} the Arrow call counting its read; "
        f"same statistics: {result['same_statistics_as_arrow']}\n"
        f"from Parquet (same rows): fast path {ratio('fast_parquet_vs_arrow_in_memory')} "
        "the Arrow call's compute, "
        f"{ratio('fast_parquet_vs_arrow_from_frame')} the Arrow call from a DataFrame, "
        f"{ratio('fast_parquet_vs_dataframe')} generate_statistics_from_dataframe; "
        f"same statistics: {result['parquet_same_statistics_as_arrow']}\n"
        f"on {sizes[0]:,} rows: fast path {ratio('fast_vs_beam')} the Beam DirectRunner (target >= 20x)\n"
        f"fast path peak memory from 1M rows up: {result['peak_mb_1m_to_largest']} MB (target: flat)\n"
        f"-> {path}"
    )


if __name__ == "__main__":
    main()
