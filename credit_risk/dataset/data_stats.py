"""TFDV statistics of a dataset of any size: a fast in-process path and a Beam path.

Both read the data the same way - CSV (every cell as text, empty = missing) or Parquet, local or
gs://, in bounded Arrow record batches - and type each batch by the feature spec (numerics float64,
categoricals string, label int64; a value that does not parse becomes missing, and the row-level
checks in ``data.DataChecks`` name it). So both compute the statistics of exactly the same rows:

- ``fast_statistics``: TFDV's in-memory combiners fed batch by batch (memory bounded by the batch
  size, not the data), with the columns split across worker processes by cost: per-feature
  statistics are independent, so each process computes whole features and the outputs are merged -
  the same statistics whatever the number of processes. From Parquet a process reads only its own
  columns; a CSV has to be parsed whole by each process, so Parquet (what ingest writes) gains more.
- ``beam_statistics``: ``tfdv.GenerateStatistics`` in an Apache Beam pipeline with the given
  pipeline options (``--runner=DataflowRunner --project ... --region ...``, Flink, Spark, or the
  DirectRunner in multi-process mode), for data that should be processed where it lives.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import multiprocessing
import os
import re
import sys
import tempfile
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from credit_risk import storage
from credit_risk.errors import DataError
from credit_risk.spec import values
from credit_risk.spec.feature_spec import FeatureSpec

log = logging.getLogger(__name__)

BATCH_ROWS = 131_072  # rows per Arrow record batch: the unit of memory


PARQUET_MAGIC = b"PAR1"  # the first (and last) four bytes of every Parquet file


def is_parquet(uri: str) -> bool:
    """Whether ``uri`` is a Parquet file (else it is read as CSV): by its name, or for a local file
    by its first bytes (a KFP artifact path has no extension: the validated snapshot and the
    splits are Parquet files named by the artifact)."""
    if uri.endswith((".parquet", ".pq")):
        return True
    if storage.is_remote(uri):
        return False
    try:
        with open(uri, "rb") as f:
            return f.read(len(PARQUET_MAGIC)) == PARQUET_MAGIC
    except OSError:
        return False


class TypedTableWriter:
    """Typed rows (``values.typed`` frames) appended to one Parquet file with the spec's schema
    (``values.arrow_schema``), written beside ``path`` and renamed into place by ``commit``: a
    failure leaves no file a later step could pick up. A table with no row still has its columns."""

    def __init__(self, path: str | os.PathLike[str], spec: FeatureSpec) -> None:
        import pyarrow.parquet as pq

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.path.with_name(f".{self.path.name}.partial")
        self.schema = values.arrow_schema(spec)
        self.rows = 0
        self._writer = pq.ParquetWriter(self.partial, self.schema)

    def write(self, typed: Any) -> None:
        import pyarrow as pa

        if len(typed):
            self._writer.write_table(pa.Table.from_pandas(typed, schema=self.schema, preserve_index=False))
            self.rows += len(typed)

    def commit(self) -> None:
        self._writer.close()
        self.partial.replace(self.path)

    def __enter__(self) -> TypedTableWriter:
        return self

    def __exit__(self, kind: Any, *_: Any) -> None:
        if kind is not None:
            self._writer.close()
            self.partial.unlink(missing_ok=True)


def parquet_file(stream: Any, uri: str) -> Any:
    """A ``pyarrow.parquet.ParquetFile`` over ``stream``: the one way this package opens Parquet.

    pyarrow 10 (pinned by TFDV 1.16) unpickles ``arrow.py_extension_type`` columns while it reads a
    file's schema, so a crafted file runs code on read (CVE-2023-47248, PYSEC-2023-238). Importing
    ``pyarrow_hotfix`` first makes pyarrow refuse such a column; the refusal becomes a DataError
    naming the file. The waiver in locks/audit-waivers.toml points here.
    """
    import pyarrow.parquet as pq
    import pyarrow_hotfix  # noqa: F401 - installs the refusal process-wide on import

    try:
        return pq.ParquetFile(stream)
    except RuntimeError as e:
        if "Disallowed deserialization" not in str(e):
            raise
        raise DataError(
            f"{uri}: refused - a column has a pickled Python extension type (arrow.py_extension_type), "
            "which would run code when read (CVE-2023-47248); rewrite the file with plain Arrow types"
        ) from None


def csv_header(uri: str) -> list[str]:
    """Column names from the first line of a CSV (DataError for an empty file)."""
    import pyarrow.csv as pacsv

    with storage.open_read(uri) as stream:
        first = stream.readline()
    if not first.strip():
        raise DataError(f"{uri}: the file is empty (no header row)")
    return list(pacsv.read_csv(io.BytesIO(first)).column_names)


def columns_of(uri: str) -> list[str]:
    """Column names of a CSV (header) or Parquet (schema) file."""
    return _parquet_columns(uri) if is_parquet(uri) else csv_header(uri)


def _line_blocks(stream: Any, block_bytes: int) -> Iterator[bytes]:
    """Whole lines of ``stream`` in blocks of about ``block_bytes``."""
    carry = b""
    while True:
        data = stream.read(block_bytes)
        if not data:
            if carry.strip():
                yield carry
            return
        data = carry + data
        cut = data.rfind(b"\n")
        if cut == -1:
            carry = data
            continue
        yield data[: cut + 1]
        carry = data[cut + 1 :]


def _csv_error(message: str, rows_before: int) -> str:
    """pyarrow's parse error with its block-relative ``Row #N`` (the header is row 1) as the file's
    line: ``file line 9: Expected 1 columns, got 2: ...``."""
    found = re.search(r"Row #(\d+): ", message)
    if not found:
        return f"after data row {rows_before}: {message}"
    detail = message[found.end() :]
    return f"file line {rows_before + int(found.group(1))}: {detail}"


def raw_batches(
    uri: str,
    columns: Sequence[str] | None = None,
    batch_rows: int = BATCH_ROWS,
) -> Generator[Any, None, None]:
    """pyarrow RecordBatches of ``uri`` (CSV cells all as text; ``columns`` = only these)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if is_parquet(uri):
        with storage.open_read(uri) as stream:
            yield from parquet_file(stream, uri).iter_batches(batch_size=batch_rows, columns=columns)
        return
    names = csv_header(uri)
    convert = pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names},
        null_values=[""],  # only an empty cell is missing; "NA" may be a real category
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
        include_columns=list(columns) if columns is not None else None,
    )
    # Blocks of whole lines parsed one at a time: pyarrow's own streaming CSV reader keeps memory
    # growing with the file (apache/gluten#5766); this keeps it at one block. ~200 bytes a row.
    block_bytes = max(1 << 20, batch_rows * 200)
    rows = 0
    with storage.open_read(uri) as stream:
        header = stream.readline()
        for block in _line_blocks(stream, block_bytes):
            read = pacsv.ReadOptions(use_threads=False, block_size=len(header) + len(block) + 1)
            try:
                table = pacsv.read_csv(io.BytesIO(header + block), read_options=read, convert_options=convert)
            except pa.ArrowInvalid as e:
                raise DataError(f"{uri}: not a readable CSV: {_csv_error(str(e), rows)}") from e
            for batch in table.to_batches():
                rows += batch.num_rows
                yield batch


def text_frames(uri: str, chunk_rows: int, columns: Sequence[str] | None = None) -> Iterator[Any]:
    """The rows of one CSV/Parquet file as pandas frames of at most ``chunk_rows`` rows (CSV cells
    text, Parquet cells as typed; a missing cell NaN, as pandas' own CSV reader gives it): the one
    chunked reader of split, training, scoring, monitoring and the back-tests (``raw_batches``
    underneath, so they read a file exactly as validation does)."""
    import numpy as np

    for batch in raw_batches(uri, columns=columns, batch_rows=chunk_rows):
        frame = batch.to_pandas()
        for name in frame.select_dtypes(include="object").columns:
            frame[name] = frame[name].where(frame[name].notna(), np.nan)
        for start in range(0, len(frame), chunk_rows):  # a CSV block can hold more rows
            yield frame.iloc[start : start + chunk_rows].reset_index(drop=True)


@dataclass(frozen=True)
class FileChunk:
    """Rows of one data file as read (CSV cells as text, Parquet cells typed), before the spec's
    typing (``values.typed``), with where they came from for its error messages."""

    uri: str
    first_row: int  # 1-based data row number in its file
    frame: Any  # pandas.DataFrame

    @property
    def line_offset(self) -> int | None:
        """File line = row + this for a CSV (its header is line 1); None for Parquet."""
        return None if is_parquet(self.uri) else 1


def file_chunks(
    files: Sequence[str], columns: Sequence[str], chunk_rows: int, needed_by: str
) -> Iterator[FileChunk]:
    """``columns`` of every row of ``files`` in chunks of at most ``chunk_rows``; a file without
    one of them is a DataError naming the file, the columns and ``needed_by`` (who needs them)."""
    for uri in files:
        missing = [c for c in columns if c not in columns_of(uri)]
        if missing:
            raise DataError(f"{uri}: column(s) {missing} {needed_by} are not in the data")
        row = 1
        for part in text_frames(uri, chunk_rows, columns):
            yield FileChunk(uri, row, part)
            row += len(part)


def as_text(batch: Any) -> Any:
    """Every column as text (a Parquet batch's numbers too), as the row checks read a CSV."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if all(pa.types.is_string(t) for t in batch.schema.types):
        return batch
    columns = [c if pa.types.is_string(c.type) else pc.cast(c, pa.string()) for c in batch.columns]
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def stats_options(spec: FeatureSpec, schema: Any = None) -> Any:
    import tensorflow_data_validation as tfdv

    return tfdv.StatsOptions(schema=schema, num_top_values=20, num_rank_histogram_buckets=100)


# --- fast path --------------------------------------------------------------------------------
def in_memory_generators(spec: FeatureSpec) -> list[Any]:
    """TFDV's own in-memory statistics generators for ``stats_options(spec)``, with one Beam-only
    side job switched off: the top-k generator samples ~1% of its calls to count string lengths
    for a Beam metric (``binary_scalar_len_*``), in a Python loop over every value of the batch.
    Outside a Beam pipeline that metric goes nowhere; the loop cost ~9% of the median time and
    caused all of the second-long spikes between runs. The statistics are the same
    (``tests/pipeline/test_data_stats.py`` compares them with TFDV's own in-memory call)."""
    from tensorflow_data_validation.statistics import stats_impl
    from tensorflow_data_validation.statistics.generators import top_k_uniques_sketch_stats_generator as topk

    generators = stats_impl.get_generators(stats_options(spec), in_memory=True)
    for generator in generators:
        if isinstance(generator, topk.TopKUniquesSketchStatsGenerator):
            generator._length_counter_sampling_rate = 0.0
    return generators


def column_costs(sample: Any, spec: FeatureSpec) -> dict[str, float]:
    """Relative cost of each column's statistics, from a sample batch of the data.

    Measured on TFDV 1.16 (1M rows, one column at a time): a number costs about the same whatever
    its values (~40 ns a row: moments, histograms, quantile sketch); a text column costs that plus
    about 3.6 ns per byte (UTF-8 check, byte count, top-k and distinct sketches all walk the bytes),
    so a 45-byte category costs 5x a number. In units of one number: ``1 + bytes / 12.5``.
    """
    import pyarrow.compute as pc

    numeric = {f.name for f in spec.features if f.is_numeric} | {spec.label}
    costs = {}
    for name, column in zip(sample.schema.names, sample.columns, strict=True):
        text_bytes = 0.0
        if name not in numeric and len(column) > column.null_count:
            text_bytes = pc.mean(pc.binary_length(column.cast("string"))).as_py() or 0.0
        costs[name] = 1.0 + text_bytes / 12.5
    return costs


def _column_groups(costs: dict[str, float], groups: int) -> list[list[str]]:
    """Columns split into ``groups`` of about equal total cost (costliest first, each to the
    least-loaded group)."""
    out: list[list[str]] = [[] for _ in range(groups)]
    load = [0.0] * groups
    for column in sorted(costs, key=lambda c: -costs[c]):
        i = load.index(min(load))
        out[i].append(column)
        load[i] += costs[column]
    return [g for g in out if g]


def _statistics_of(
    files: Sequence[str], spec: FeatureSpec, columns: Sequence[str] | None, batch_rows: int
) -> bytes:
    """Statistics (serialized DatasetFeatureStatisticsList) of ``columns`` of every row of ``files``."""
    from tensorflow_data_validation.statistics import stats_impl
    from tfx_bsl.arrow import table_util

    generators = in_memory_generators(spec)
    accumulators = [g.create_accumulator() for g in generators]
    for uri in files:
        for batch in raw_batches(uri, columns, batch_rows):
            canonical = table_util.CanonicalizeRecordBatch(values.typed_batch(batch, spec))
            accumulators = [g.add_input(a, canonical) for g, a in zip(generators, accumulators, strict=True)]
    return bytes(stats_impl.extract_statistics_output(accumulators, generators).SerializeToString())


def _worker(args: tuple[list[str], FeatureSpec, list[str] | None, int]) -> bytes:
    return _statistics_of(*args)


def fast_statistics(uri: str, spec: FeatureSpec, processes: int = 0, batch_rows: int = BATCH_ROWS) -> Any:
    """TFDV statistics of every file at ``uri`` (file, directory/prefix or glob), in-process.

    ``processes``: worker processes (0 = one per CPU; 1 = this process). The features are split
    across processes by their cost (``column_costs``); each process reads every row of its
    features and computes them whole, so the result is the one-process result whatever the
    number of processes (floats to the rounding of sums). Memory per process is bounded by
    ``batch_rows``.
    """
    from tensorflow_data_validation.statistics import stats_impl  # noqa: F401 - imported once, before the fork
    from tensorflow_metadata.proto.v0 import statistics_pb2
    from tfx_bsl.arrow import table_util  # noqa: F401 - imported once, before the fork
    from tfx_bsl.statistics import merge_util

    files = storage.list_files(uri)
    processes = processes or os.cpu_count() or 1
    start = time.perf_counter()
    groups: list[list[str] | None] = [None]  # None: every column
    if processes > 1 and sys.platform.startswith("linux"):
        with contextlib.closing(raw_batches(files[0], None, batch_rows=4096)) as batches:
            sample = next(batches, None)
        if sample is not None:
            groups = list(_column_groups(column_costs(sample, spec), processes))
    if len(groups) <= 1:
        outputs = [_statistics_of(files, spec, None, batch_rows)]
    else:
        # fork: the children share this process's imported TFDV (spawning would re-import it, ~4 s).
        # This process computes the first group itself rather than wait idle on a core.
        with multiprocessing.get_context("fork").Pool(len(groups) - 1) as pool:
            others = pool.map_async(_worker, [(files, spec, g, batch_rows) for g in groups[1:]])
            outputs = [_statistics_of(files, spec, groups[0], batch_rows), *others.get()]
    parsed = []
    for blob in outputs:
        stats = statistics_pb2.DatasetFeatureStatisticsList()
        stats.ParseFromString(blob)
        parsed.append(stats)
    merged = parsed[0] if len(parsed) == 1 else merge_util.merge_dataset_feature_statistics_list(parsed)
    log.info(
        "statistics of %s: %d rows, %d features in %.2fs (%d process(es))",
        uri,
        merged.datasets[0].num_examples if merged.datasets else 0,
        len(merged.datasets[0].features) if merged.datasets else 0,
        time.perf_counter() - start,
        len(groups),
    )
    return merged


def statistics_differences(a: Any, b: Any, rel_tol: float = 1e-9) -> list[str]:
    """Every field where two DatasetFeatureStatisticsList differ, feature by feature in any order
    (``[]``: the same statistics). Floats are equal to ``rel_tol``: sums taken over differently
    sized batches round differently in the last digits."""
    from google.protobuf.json_format import MessageToDict

    def features(stats: Any) -> dict[str, Any]:
        (dataset,) = stats.datasets
        return {".".join(f.path.step): MessageToDict(f) for f in dataset.features}

    def walk(x: Any, y: Any, path: str) -> Iterator[str]:
        if isinstance(x, dict) and isinstance(y, dict):
            for key in sorted(set(x) | set(y)):
                yield from walk(x.get(key), y.get(key), f"{path}.{key}")
        elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for i, (p, q) in enumerate(zip(x, y, strict=True)):
                yield from walk(p, q, f"{path}[{i}]")
        elif isinstance(x, float | int) and isinstance(y, float | int) and not isinstance(x, bool):
            if not math.isclose(x, y, rel_tol=rel_tol, abs_tol=1e-12):
                yield f"{path}: {x} != {y}"
        elif x != y:
            yield f"{path}: {x!r} != {y!r}"

    found = [] if a.datasets[0].num_examples == b.datasets[0].num_examples else ["num_examples"]
    return found + list(walk(features(a), features(b), ""))


def _parquet_columns(uri: str) -> list[str]:
    with storage.open_read(uri) as stream:
        return list(parquet_file(stream, uri).schema_arrow.names)


# --- Beam path --------------------------------------------------------------------------------
class _ReadTyped:
    """Beam DoFn body (picklable): a file URI -> its typed, canonical record batches."""

    def __init__(self, spec_yaml: str, batch_rows: int):
        self.spec_yaml, self.batch_rows = spec_yaml, batch_rows

    def __call__(self, uri: str) -> Iterator[Any]:
        import yaml
        from tfx_bsl.arrow import table_util

        from credit_risk.spec import feature_spec

        spec = feature_spec.from_dict(yaml.safe_load(self.spec_yaml))
        for batch in raw_batches(uri, None, self.batch_rows):
            yield table_util.CanonicalizeRecordBatch(values.typed_batch(batch, spec))


def beam_statistics(uri: str, spec: FeatureSpec, beam_args: Sequence[str], batch_rows: int = 65_536) -> Any:
    """TFDV statistics computed by ``tfdv.GenerateStatistics`` on a Beam runner.

    ``beam_args`` are Beam pipeline options, e.g. ``["--runner=DataflowRunner", "--project=p",
    "--region=europe-west1", "--temp_location=gs://b/tmp", "--sdk_container_image=<pipeline image>"]``
    or ``["--runner=DirectRunner", "--direct_num_workers=2", "--direct_running_mode=multi_processing"]``.
    On a remote runner the workers read the files themselves, so ``uri`` must be on an object store (gs:// or s3://).
    """
    import apache_beam as beam
    import tensorflow_data_validation as tfdv
    from apache_beam.options.pipeline_options import PipelineOptions

    files = storage.list_files(uri)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="beam-stats-") as tmp:
        out = os.path.join(tmp, "stats.tfrecord")
        with beam.Pipeline(options=PipelineOptions(list(beam_args))) as p:
            _ = (
                p
                | "files" >> beam.Create(files)
                | "read" >> beam.FlatMap(_ReadTyped(spec.to_yaml(), batch_rows))
                | "stats" >> tfdv.GenerateStatistics(stats_options(spec))
                | "write" >> tfdv.WriteStatisticsToBinaryFile(out)
            )
        stats = tfdv.load_stats_binary(out)
    log.info("Beam statistics of %s in %.1fs (%s)", uri, time.perf_counter() - start, " ".join(beam_args))
    return stats
