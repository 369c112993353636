"""Validation benchmark: TFDV statistics of synthetic credit rows, our fast path vs TFDV's own calls.

Generates german_credit-shaped CSVs (credit_risk.dataset.synthetic: real rows resampled, numerics jittered;
same columns and schema) of each size, then measures - every measurement in its own child process,
so its peak memory (max RSS, including its worker processes) is its own, and each timed
``--repeat`` times (the median is reported; TFDV samples string lengths for a Beam metric in a
Python loop on ~1% of its calls, which makes single timings jump by up to a second):

  * fast path: ``data_stats.fast_statistics`` on ``--processes`` processes, at every size - rows/s
    and peak memory - from the CSV (a single local CSV is split by rows), and up to
    --max-in-memory rows from the same rows as typed Parquet shards (written before the clock, like
    a snapshot from the ingest step; split by features, costliest-first);
  * TFDV's single-process in-memory calls on the same rows and with the same StatsOptions (sizes up
    to --max-in-memory): ``tfdv.generate_statistics_from_dataframe``, and the Arrow in-memory call
    (``stats_impl.generate_statistics_in_memory``) timed two ways - from the DataFrame
    (``RecordBatch.from_pandas`` + canonicalize + call, how a caller holding data makes it) and
    its compute alone on a batch made before the clock. Their read (pandas) is reported apart;
  * the whole validate step (``validation.validate``: the spec's row checks, statistics, schema
    validation, anomalies and reports) on the Parquet rows, up to --max-in-memory rows;
  * the Beam DirectRunner (``data_stats.beam_statistics``, multi-process, 2 workers) on
    --beam-rows rows (if that is one of --rows).

and compares every field of every feature's statistics with the Arrow call's (floats to 1e-9
relative). Targets (docs/measured.md): fast path >= 1.8x the in-memory call on 1M rows with identical
statistics, >= 20x the Beam DirectRunner, peak memory flat from 1M to 10M rows.

Usage (pipeline environment; 10M rows need ~2.5 GB of disk under --workdir):
  .venvs/pipeline/bin/python benchmarks/validation_benchmark.py [--rows 100000 1000000 10000000]
      [--processes 2] [--max-in-memory 1000000] [--repeat 3] [--beam-rows 100000] [--workdir /tmp]
      [--tag NAME]
Prints the measurements and writes benchmarks/results/validation[-TAG].json.
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

import provenance  # benchmarks/provenance.py: this script's folder is first on sys.path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SPEC = ROOT / "data" / "german_credit.spec.yaml"

# Each measurement runs as: python -c CHILD KIND CSV ROWS PROCESSES SPEC REPEAT STATISTICS_OUT
CHILD = r"""
import json, resource, statistics, sys, time
kind, csv, spec_path, statistics_out = sys.argv[1], sys.argv[2], sys.argv[5], sys.argv[7]
rows, processes, repeat = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[6])
from credit_risk.dataset import data, data_stats
from credit_risk.spec import feature_spec
import tensorflow_data_validation  # imported before the clock starts, as in a long-lived step
spec = feature_spec.load(spec_path)
options = data_stats.stats_options(spec)  # the same options for every call: the same work
out = {"kind": kind, "rows": rows}
if kind not in ("fast", "fast_parquet", "beam", "validate_step"):
    import pyarrow as pa
    import tensorflow_data_validation as tfdv
    from tensorflow_data_validation.statistics import stats_impl
    from tfx_bsl.arrow import table_util
    t = time.perf_counter()
    frame = data.typed_frame(data.read_raw(csv), spec)
    frame = frame.astype({c: object for c in frame.columns if frame[c].dtype == object})
    frame = frame.where(frame.notna(), None)
    out["read_seconds"] = time.perf_counter() - t
    if kind == "arrow":  # compute only: the batch is made before the clock
        batch = table_util.CanonicalizeRecordBatch(pa.RecordBatch.from_pandas(frame, preserve_index=False))


def run():
    if kind == "validate_step":  # the whole validate step: row checks, statistics, anomalies, reports
        import tempfile
        from credit_risk.dataset import validation
        with tempfile.TemporaryDirectory() as out:
            validation.validate(csv.replace(".csv", "-parquet"), spec, out)
        return None
    if kind in ("fast", "fast_parquet"):
        source = csv if kind == "fast" else csv.replace(".csv", "-parquet")
        return data_stats.fast_statistics(source, spec, processes=processes)
    if kind == "beam":
        args = ["--runner=DirectRunner", "--direct_num_workers=2", "--direct_running_mode=multi_processing"]
        return data_stats.beam_statistics(csv, spec, args)
    if kind == "dataframe":
        return tfdv.generate_statistics_from_dataframe(frame, stats_options=options)
    if kind == "arrow_from_frame":  # the in-memory call as a caller holding a DataFrame makes it
        made = table_util.CanonicalizeRecordBatch(pa.RecordBatch.from_pandas(frame, preserve_index=False))
        return stats_impl.generate_statistics_in_memory(made, options)
    return stats_impl.generate_statistics_in_memory(batch, options)


times = []
for _ in range(repeat):
    t = time.perf_counter(); stats = run(); times.append(time.perf_counter() - t)
out["all_seconds"] = times
out["seconds"] = statistics.median(times)
out["rows_per_second"] = rows / out["seconds"]
self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
out["peak_rss_mb"] = max(self_rss, child_rss) / 1024
with open(statistics_out, "wb") as f:  # for the identity check
    f.write(stats.SerializeToString() if stats is not None else b"")
print(json.dumps(out))
"""


def generate(rows: int, workdir: Path) -> Path:
    from credit_risk.dataset import data, synthetic
    from credit_risk.spec import feature_spec

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

    from credit_risk.dataset import data_stats
    from credit_risk.spec import feature_spec

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


def measure(kind: str, csv: Path, rows: int, processes: int, repeat: int) -> dict:
    stats = csv.with_name(f"stats-{kind}-{rows}.pb")
    cmd = [
        sys.executable,
        "-c",
        CHILD,
        kind,
        str(csv),
        str(rows),
        str(processes),
        str(SPEC),
        str(repeat),
        str(stats),
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} on {rows} rows failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["statistics_file"] = str(stats)
    print(
        f"  {kind:>16} {rows:>11,} rows: {result['rows_per_second']:>11,.0f} rows/s (median of "
        f"{', '.join(f'{t:.2f}' for t in result['all_seconds'])} s), peak {result['peak_rss_mb']:>6,.0f} MB",
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
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per measurement (median)")
    parser.add_argument("--beam-rows", type=int, default=100_000, help="size (one of --rows) for Beam")
    parser.add_argument("--workdir", default=tempfile.gettempdir())
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    workdir = Path(args.workdir) / "credit-risk-validation-benchmark"
    workdir.mkdir(parents=True, exist_ok=True)
    sizes = sorted(args.rows)
    runs: list[dict] = []
    for rows in sizes:
        csv = generate(rows, workdir)
        runs.append(measure("fast", csv, rows, args.processes, args.repeat))
        if rows <= args.max_in_memory:
            to_parquet(csv)
            for kind in ("fast_parquet", "arrow", "arrow_from_frame", "dataframe"):
                runs.append(
                    measure(kind, csv, rows, args.processes if kind == "fast_parquet" else 1, args.repeat)
                )
            runs.append(measure("validate_step", csv, rows, args.processes, args.repeat))
        if rows == args.beam_rows:
            runs.append(measure("beam", csv, rows, 2, args.repeat))

    def find(kind: str, rows: int) -> dict | None:
        return next((r for r in runs if r["kind"] == kind and r["rows"] == rows), None)

    def speedup(kind: str, than: str, rows: int) -> float | None:
        a, b = find(kind, rows), find(than, rows)
        return a["rows_per_second"] / b["rows_per_second"] if a and b else None

    def unlike(kind: str, rows: int) -> list[str] | None:
        from tensorflow_metadata.proto.v0 import statistics_pb2

        from credit_risk.dataset import data_stats

        a, b = find(kind, rows), find("arrow", rows)
        if not (a and b):
            return None
        loaded = [statistics_pb2.DatasetFeatureStatisticsList() for _ in range(2)]
        for stats, run in zip(loaded, (a, b), strict=True):
            stats.ParseFromString(Path(run["statistics_file"]).read_bytes())
        return data_stats.statistics_differences(*loaded)

    compare = max(r for r in sizes if r <= args.max_in_memory)
    big = [find("fast", r) for r in sizes if r >= 1_000_000]
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "processes": args.processes,
        "repeat": args.repeat,
        "runs": [{k: v for k, v in r.items() if k != "statistics_file"} for r in runs],
        "compare_rows": compare,
        "speedup": {
            f"{kind}_vs_{than}": speedup(kind, than, compare)
            for kind in ("fast_parquet", "fast")
            for than in ("arrow", "arrow_from_frame", "dataframe")
        }
        | {"fast_vs_beam": speedup("fast", "beam", args.beam_rows)},
        # every field of every feature against TFDV's own call (floats to 1e-9 relative)
        "differences_from_arrow_call": {kind: unlike(kind, compare) for kind in ("fast_parquet", "fast")},
        "peak_mb_1m_to_largest": [b["peak_rss_mb"] for b in big if b],
    }
    path = provenance.write(RESULTS / f"validation{'-' + args.tag if args.tag else ''}.json", result, args)

    def ratio(key: str) -> str:
        value = result["speedup"][key]
        return f"{value:.2f}x" if value is not None else "n/a"

    def same(kind: str) -> str:
        found = result["differences_from_arrow_call"][kind]
        if found is None:
            return "n/a"
        return "identical" if not found else f"{len(found)} differences, e.g. {found[:3]}"

    step = find("validate_step", compare)
    step_line = (
        f"whole validate step (row checks + statistics + anomalies + reports) on {compare:,} Parquet "
        f"rows: {step['rows_per_second']:,.0f} rows/s\n"
        if step
        else ""
    )
    print(
        f"\non {compare:,} rows (median of {args.repeat}), fast path on {args.processes} processes vs TFDV's "
        "single-process in-memory call (target >= 1.8x):\n"
        f"  from Parquet: {ratio('fast_parquet_vs_arrow_from_frame')} the Arrow call from a DataFrame, "
        f"{ratio('fast_parquet_vs_dataframe')} generate_statistics_from_dataframe, "
        f"{ratio('fast_parquet_vs_arrow')} the Arrow call's compute alone; "
        f"statistics: {same('fast_parquet')}\n"
        f"  from CSV:     {ratio('fast_vs_arrow_from_frame')} the Arrow call from a DataFrame, "
        f"{ratio('fast_vs_dataframe')} generate_statistics_from_dataframe, "
        f"{ratio('fast_vs_arrow')} the Arrow call's compute alone; statistics: {same('fast')}\n"
        f"on {args.beam_rows:,} rows: fast path (CSV) {ratio('fast_vs_beam')} the Beam DirectRunner "
        "(target >= 20x)\n"
        f"fast path peak memory from 1M rows up: {result['peak_mb_1m_to_largest']} MB (target: flat)\n"
        f"{step_line}-> {path}"
    )


if __name__ == "__main__":
    main()
