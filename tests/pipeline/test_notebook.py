"""The walkthrough notebook runs headless, top to bottom, in the pipeline environment. Its pipeline
run is the suite's shared default german_credit run, passed as the notebook's RUN_DIR parameter
the way papermill injects parameters (a cell after the one tagged ``parameters``): the notebook's
own cells - spec, data, TFDV, reading the run, serving it and querying it - all execute here."""

import json

import nbformat
import pytest
from nbclient import NotebookClient

from tests.helpers import GERMAN_RUN_GROUP, REPO

pytestmark = pytest.mark.slow


@pytest.mark.xdist_group(GERMAN_RUN_GROUP)  # one worker under -n: they share the run
def test_walkthrough_notebook_executes(german_run):
    assert german_run.succeeded, german_run.error
    path = REPO / "notebooks" / "credit_risk_walkthrough.ipynb"
    nb = nbformat.read(path, as_version=4)
    (at,) = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    injected = nbformat.v4.new_code_cell(f"RUN_DIR = {json.dumps(german_run.run_dir)}")
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(at + 1, injected)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}
    ).execute()
    outputs = "".join(
        o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs
    )
    assert "validation passed" in outputs
    assert "verdict: approved" in outputs
    assert '"pd":' in outputs
    assert german_run.run_dir in outputs  # the summary printed is the shared run's
