# Image every pipeline component runs in (kfp 2.13 + TF 2.16 + TFDV 1.16 + this package).
# Built from the same lock as .venvs/pipeline:  docker build -f docker/pipeline.Dockerfile \
#   -t <registry>/credit-risk-pipeline:<version> .     (tag = credit_risk.__version__)
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 TF_CPP_MIN_LOG_LEVEL=2
WORKDIR /opt/credit-risk

COPY locks/pipeline.txt locks/serving.txt locks/
RUN pip install --no-cache-dir --require-hashes --no-deps -r locks/pipeline.txt
# The deploy step smoke-tests a model in the serving environment (kserve + TF 2.21) before it gets
# traffic (credit_risk/infra_validation.py); that environment cannot share the pipeline's packages.
RUN python -m venv /opt/serving-venv \
    && /opt/serving-venv/bin/pip install --no-cache-dir --require-hashes --no-deps -r locks/serving.txt
ENV CREDIT_RISK_SERVING_PYTHON=/opt/serving-venv/bin/python

COPY setup.py README.md ./
COPY credit_risk credit_risk
COPY components components
COPY pipelines pipelines
COPY serving serving
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
    && /opt/serving-venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation . \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin credit-risk

USER 10001
