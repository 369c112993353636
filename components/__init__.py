"""KFP v2 components: thin ``@dsl.component`` wrappers over ``credit_risk.steps``.

Each body only unpacks artifacts, calls one step function and records metadata, so the logic is
tested without KFP. Every component runs in the pipeline image (no pip install at run time).
"""

from credit_risk.components.batch_score import batch_score
from credit_risk.components.deploy import deploy
from credit_risk.components.evaluate import evaluate
from credit_risk.components.history_features import history_features
from credit_risk.components.ingest import ingest
from credit_risk.components.monitor import monitor
from credit_risk.components.split import split
from credit_risk.components.train import train
from credit_risk.components.validate import validate

__all__ = [
    "batch_score",
    "deploy",
    "evaluate",
    "history_features",
    "ingest",
    "monitor",
    "split",
    "train",
    "validate",
]
