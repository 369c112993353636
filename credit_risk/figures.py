"""Figures for the self-contained HTML reports: a matplotlib figure as a PNG data URI.

Every report (evaluation ``report``, ``validation_report``, ``monitoring_report``) embeds its plots
this way, so one HTML file renders in the Kubeflow UI with nothing else to fetch.
"""

from __future__ import annotations

import base64
import io
from typing import Any


def png_data_uri(fig: Any) -> str:
    """``fig`` as ``data:image/png;base64,...``; the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
