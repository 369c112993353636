"""Packaging for credit-risk-kfp.

The repo keeps the required top-level folders ``components/``, ``pipelines/`` and
``serving/`` but installs them as sub-packages of ``credit_risk`` so nothing generic
(``serving``, ``components``) lands at the top of site-packages.

Two sides never share one environment (see docs/development.md, "Two environments"):
  pip install .[pipeline]   KFP 2.13 + TF 2.16 + TFDV 1.16 (components, pipeline, CLI)
  pip install .[serving]    kserve 0.21 + TF 2.21 (the KServe predictor)
Exact versions live in ``locks/*.txt``; these ranges only say what the code needs.
"""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (HERE / "credit_risk" / "__init__.py").read_text(), re.M
).group(1)

COMMON = ["pyyaml>=6", "numpy"]
PIPELINE = [
    "kfp>=2.13,<2.14",  # newest kfp that co-installs with TFDV 1.16 (protobuf<6)
    "kfp-kubernetes>=1.5,<1.6",  # secrets as env vars (database credentials), the kfp 2.13 match
    "tensorflow>=2.16,<2.17",
    "keras>=3.10,<4",
    "tensorflow-data-validation>=1.16.1,<1.17",
    "tfx-bsl>=1.16.1,<1.17",
    "apache-beam[gcp,dill]>=2.60",
    "protobuf>=4.25,<5",
    "pandas>=1.5,<2",
    "pyarrow>=10,<11",
    "google-cloud-storage>=2.19,<3",
    "boto3>=1.36,<2",  # s3:// (AWS, MinIO): CRC32 request checksums, standard retries; docs/storage.md
    "kubernetes>=30,<31",
    "scikit-learn>=1.4",
    "matplotlib>=3.8",  # evaluation report plots (PNG embedded in the HTML artifact)
    # history features at scale (credit_risk/history): DataFrame API only; needs a Java 17+ runtime.
    # Its only dependency is py4j, so it shares this environment's pins (docs/history.md)
    "pyspark>=4.0,<5",
]
SERVING = [
    "kserve>=0.21,<0.22",
    "tensorflow-cpu>=2.21,<2.22",
    "keras>=3.10,<4",
    "google-cloud-storage>=3",
    "boto3>=1.36,<2",  # --storage_uri s3://: the predictor downloads a published version itself
    "orjson>=3.10",
]
DEV = ["pytest>=8", "pytest-timeout>=2.3", "requests>=2.32", "jsonschema>=4.20"]

setup(
    name="credit-risk-kfp",
    version=VERSION,
    description="Credit default-risk (PD) modeling on Kubeflow: TFDV validation, "
    "wide-and-deep training, credit-grade evaluation gate, KServe serving.",
    # absent in image builds: the Dockerfiles do not COPY it, so editing the docs changes no image tag
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11,<3.12",
    # derived from the tree: a new sub-package (credit_risk/storage/ once went missing from a
    # hand-kept list and only the image build noticed) is installed without editing this file
    packages=["credit_risk"]
    + [f"credit_risk.{p}" for p in find_packages("credit_risk")]
    + ["credit_risk.components", "credit_risk.pipelines", "credit_risk.serving"],
    package_dir={
        "credit_risk": "credit_risk",
        "credit_risk.components": "components",
        "credit_risk.pipelines": "pipelines",
        "credit_risk.serving": "serving",
    },
    package_data={
        "credit_risk": ["config/*.yaml"],
        "credit_risk.pipelines": ["*.yaml"],
    },
    install_requires=COMMON,
    extras_require={"pipeline": PIPELINE, "serving": SERVING, "dev": DEV},
    entry_points={"console_scripts": ["credit-risk=credit_risk.app.cli:main"]},
)
