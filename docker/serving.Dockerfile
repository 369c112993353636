# Our KServe predictor (kserve 0.21 + TF 2.21 + this package), from the same lock as .venvs/serving:
#   docker build -f docker/serving.Dockerfile -t <registry>/credit-risk-predictor:<version> .
# In an InferenceService, KServe's storage initializer downloads STORAGE_URI to /mnt/models.
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 TF_CPP_MIN_LOG_LEVEL=2
WORKDIR /opt/credit-risk

COPY locks/serving.txt locks/serving.txt
RUN pip install --no-cache-dir --require-hashes --no-deps -r locks/serving.txt

COPY setup.py README.md ./
COPY credit_risk credit_risk
COPY components components
COPY pipelines pipelines
COPY serving serving
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin credit-risk

USER 10001
EXPOSE 8080
ENTRYPOINT ["python", "-m", "credit_risk.serving"]
CMD ["--model_dir", "/mnt/models", "--model_name", "credit-risk", "--host", "0.0.0.0", "--http_port", "8080", "--workers", "2"]
