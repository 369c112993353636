"""The walkthrough notebook runs headless, top to bottom, in the pipeline environment."""

import nbformat
import pytest
from nbclient import NotebookClient

from tests.helpers import REPO

pytestmark = pytest.mark.slow


def test_walkthrough_notebook_executes(tmp_path):
    path = REPO / "notebooks" / "credit_risk_walkthrough.ipynb"
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}
    ).execute()
    outputs = "".join(
        o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs
    )
    assert "validation passed" in outputs
    assert "verdict: approved" in outputs
    assert '"pd":' in outputs
