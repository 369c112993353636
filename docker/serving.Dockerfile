# Our KServe predictor (kserve 0.21 + TF 2.21 + this package), from the same lock as .venvs/serving.
#   credit-risk build-images            (or: docker build -f docker/serving.Dockerfile -t R/credit-risk-predictor:TAG .)
# In an InferenceService KServe's storage initializer downloads STORAGE_URI to /mnt/models; the pod
# runs as uid 10001 with a read-only root filesystem, so temporary files go to /dev/shm (a tmpfs in
# every pod, no volume or Knative feature flag needed) and HOME points there too.
ARG BASE_IMAGE=python:3.11.7-slim-bookworm

# --- build: the locked packages and this package into a venv at its final path -------------------
FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
WORKDIR /src
COPY locks/serving.txt locks/serving.txt
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes --no-deps -r locks/serving.txt
COPY setup.py ./
COPY credit_risk credit_risk
COPY components components
COPY pipelines pipelines
COPY serving serving
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation .

# --- runtime: the venv only; no source tree, so nothing shadows the installed package ------------
FROM ${BASE_IMAGE}
ARG IMAGE_CONTENT_HASH=unknown
# every image's hash, "name=hash,...": how code inside the image (no source tree) names the images
ARG IMAGE_HASHES=""
LABEL org.opencontainers.image.title="credit-risk-predictor" \
      io.credit-risk.content-hash="${IMAGE_CONTENT_HASH}"
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2 \
    CREDIT_RISK_IMAGE_HASH=${IMAGE_HASHES} \
    HOME=/dev/shm TMPDIR=/dev/shm
COPY --from=build /opt/venv /opt/venv
RUN useradd --uid 10001 --no-create-home --home-dir /dev/shm --shell /usr/sbin/nologin credit-risk
WORKDIR /
USER 10001
EXPOSE 8080
ENTRYPOINT ["python", "-m", "credit_risk.serving"]
CMD ["--model_dir", "/mnt/models", "--model_name", "credit-risk", "--host", "0.0.0.0", "--http_port", "8080", "--workers", "2"]
