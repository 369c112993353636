"""CVE-2023-47248 (pyarrow < 14.0.1 unpickles ``arrow.py_extension_type`` columns on read): a crafted
Parquet file whose harmless payload creates a marker file. The control shows the payload really runs
when pyarrow reads it unprotected; every reader of this package refuses it with a clear error."""

import ast
import subprocess
import sys

import pytest

from credit_risk.dataset import data_stats
from credit_risk.errors import DataError
from credit_risk.release import batch_scoring
from tests.helpers import REPO

CRAFT = """
import sys, pyarrow as pa, pyarrow.parquet as pq
marker, out = sys.argv[1], sys.argv[2]
class Payload(pa.PyExtensionType):
    def __init__(self):
        super().__init__(pa.int64())
    def __reduce__(self):  # unpickling calls open(marker, "w"): creates an empty file, nothing more
        return (open, (marker, "w"))
column = pa.ExtensionArray.from_storage(Payload(), pa.array([1, 2, 3]))
pq.write_table(pa.table({"Age": column}), out)
"""
UNPROTECTED_READ = "import sys, pyarrow.parquet as pq; pq.ParquetFile(sys.argv[1]).schema_arrow"


@pytest.fixture
def crafted(tmp_path):
    marker, path = tmp_path / "payload-ran", tmp_path / "crafted.parquet"
    subprocess.run([sys.executable, "-c", CRAFT, str(marker), str(path)], check=True, timeout=120)
    assert not marker.exists()  # writing the file does not run the payload
    return path, marker


def test_control_the_payload_runs_when_pyarrow_reads_it_unprotected(crafted):
    path, marker = crafted
    subprocess.run(
        [sys.executable, "-c", UNPROTECTED_READ, str(path)], capture_output=True, timeout=120, check=False
    )
    assert marker.exists(), "the crafted file did not run its payload: the control proves nothing"


@pytest.mark.parametrize(
    "read",
    [
        lambda p: list(data_stats.raw_batches(str(p))),  # validate, ingest (files), monitoring
        lambda p: data_stats.columns_of(str(p)),
        lambda p: list(data_stats.text_frames(str(p), 100)),  # split / train / scoring
        lambda p: batch_scoring._estimated_rows([str(p)]),
    ],
    ids=["raw_batches", "columns_of", "training_chunks", "batch_scoring_rows"],
)
def test_every_reader_refuses_the_crafted_file(crafted, read):
    path, marker = crafted
    # in-process, after other tests may have imported pyarrow: refused, payload never runs
    with pytest.raises(DataError, match=r"crafted\.parquet: refused .*CVE-2023-47248"):
        read(path)
    assert not marker.exists()


def test_a_fresh_process_reading_through_the_package_is_protected(crafted):
    path, marker = crafted
    code = "import sys; from credit_risk.dataset import data_stats; list(data_stats.raw_batches(sys.argv[1]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path)], check=False, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode != 0 and "CVE-2023-47248" in proc.stderr
    assert not marker.exists()


def test_parquet_is_opened_only_through_the_protected_reader():
    """No module but data_stats.parquet_file calls pyarrow's Parquet readers directly."""
    readers = {"ParquetFile", "read_table", "read_parquet", "ParquetDataset", "open_file", "read_feather"}
    offenders = []
    for path in [*(REPO / "credit_risk").rglob("*.py"), *(REPO / "serving").rglob("*.py")]:
        tree = ast.parse(path.read_text())
        protected = {
            line
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef) and node.name == "parquet_file"
            for line in range(node.lineno, (node.end_lineno or node.lineno) + 1)
        }
        offenders += [
            f"{path.relative_to(REPO)}:{node.lineno} .{node.attr}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr in readers and node.lineno not in protected
        ]
    assert offenders == []
