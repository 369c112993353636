"""Identity and lineage: the one place that says which rows trained a model, which model was
evaluated and under which version it is published, served and scored.

- **Data**: ``content_hash`` hashes typed rows (chunk by chunk equals all at once), and
  ``data_fingerprint`` / ``fingerprint`` name a dataset ``rows=<n>;sha256=<16 hex>`` - ingest's
  snapshot hash, training's data fingerprint (streamed or in memory) and evaluation's held-out one.
- **Model**: ``model_fingerprint`` hashes the SavedModel graph and weights (``sha256:<16 hex>``):
  what the approval record approves.
- **Version**: ``version_name`` turns a model fingerprint into the content-addressed version
  ``m-<16 hex>`` deploy publishes under and the predictor, batch scores and monitoring report;
  ``model_version_of`` goes from a model directory straight to it.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pandas as pd

from credit_risk.errors import ConfigError


def content_hash(chunk: pd.DataFrame) -> bytes:
    """Row hashes of a typed chunk; hashing chunks in order equals hashing the whole frame."""
    return bytes(pd.util.hash_pandas_object(chunk, index=False).to_numpy().tobytes())


def data_fingerprint(rows: int, digest: Any) -> str:
    """``rows=<n>;sha256=<16 hex>`` of a sha256 ``digest`` fed with ``content_hash`` in row order."""
    return f"rows={rows};sha256={digest.hexdigest()[:16]}"


def fingerprint(frame: pd.DataFrame) -> str:
    """Content fingerprint of typed rows in memory (order-sensitive): proves which data trained or
    evaluated a model. Equal to the one ``training_data.analyze`` computes streaming the same rows."""
    return data_fingerprint(len(frame), hashlib.sha256(content_hash(frame)))


def model_fingerprint(model_dir: str | Path) -> str:
    """Content hash of the SavedModel graph and weights: identifies exactly what was evaluated."""
    digest = hashlib.sha256()
    root = Path(model_dir)
    for path in sorted([root / "saved_model.pb", *sorted((root / "variables").glob("*"))]):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return f"sha256:{digest.hexdigest()[:16]}"


def version_name(fingerprint: str) -> str:
    """Content-addressed version name of a model fingerprint (``model_fingerprint``): the same
    model always publishes to the same place and scores under the same version."""
    digest = fingerprint.rsplit(":", maxsplit=1)[-1]
    if not re.fullmatch(r"[0-9a-f]{8,64}", digest):
        raise ConfigError(f"not a usable model fingerprint: {fingerprint!r}")
    return f"m-{digest[:16]}"


def model_version_of(model_dir: str | Path) -> str:
    """The version name of the model in ``model_dir``."""
    return version_name(model_fingerprint(model_dir))
