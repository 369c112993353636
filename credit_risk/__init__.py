"""credit_risk: probability-of-default modeling on Kubeflow Pipelines and KServe."""

__version__ = "0.1.0"
