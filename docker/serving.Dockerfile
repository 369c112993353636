# Our KServe predictor (kserve 0.21 + TF 2.21 + this package), from the same lock as .venvs/serving.
#   credit-risk build-images            (or: docker build -f docker/serving.Dockerfile -t R/credit-risk-predictor:TAG .)
# In an InferenceService KServe's storage initializer downloads STORAGE_URI to /mnt/models; the pod
# runs as uid 10001 with a read-only root filesystem, so temporary files go to /dev/shm (a tmpfs in
# every pod, no volume or Knative feature flag needed) and HOME points there too.
ARG BASE_IMAGE=python:3.11.7-slim-bookworm

# --- build: the locked packages and this package into a venv at its final path -------------------
FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1 \
    UV_SYSTEM_CERTS=1
# uv's package cache for this build: a BuildKit cache mount by default; `credit-risk build-images`
# with buildah/podman mounts the host's uv cache instead (the one bin/setup-envs filled from the
# same locks) and points UV_CACHE_DIR at it. Build-time only: the image keeps neither.
ARG UV_CACHE_DIR=/root/.cache/uv
WORKDIR /src
COPY locks/build.txt locks/serving.txt locks/
RUN --mount=type=cache,target=/root/.cache/uv \
    python3 -m venv /opt/build-tools \
    && /opt/build-tools/bin/pip install --no-cache-dir --require-hashes -r locks/build.txt \
    && python3 -m venv /opt/venv \
    && /opt/build-tools/bin/uv pip install --python /opt/venv/bin/python --require-hashes --no-deps \
       -r locks/serving.txt
COPY setup.py ./
COPY credit_risk credit_risk
COPY components components
COPY pipelines pipelines
COPY serving serving
RUN /opt/venv/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

# --- runtime: the venv only; no source tree, so nothing shadows the installed package ------------
# Layer order is cache order: the locked dependencies first (they change only with the lock), this
# package's wheel and the content hash last, so a code change rebuilds seconds, not the venv.
FROM ${BASE_IMAGE}
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2 \
    HOME=/dev/shm TMPDIR=/dev/shm
RUN useradd --uid 10001 --no-create-home --home-dir /dev/shm --shell /usr/sbin/nologin credit-risk
COPY --from=build /opt/venv /opt/venv
COPY --from=build /wheels /tmp/wheels
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps /tmp/wheels/*.whl && rm -rf /tmp/wheels
ARG IMAGE_CONTENT_HASH=unknown
# every image's hash, "name=hash,...": how code inside the image (no source tree) names the images
ARG IMAGE_HASHES=""
LABEL org.opencontainers.image.title="credit-risk-predictor" \
      io.credit-risk.content-hash="${IMAGE_CONTENT_HASH}"
ENV CREDIT_RISK_IMAGE_HASH=${IMAGE_HASHES}
WORKDIR /
USER 10001
EXPOSE 8080
ENTRYPOINT ["python", "-m", "credit_risk.serving"]
CMD ["--model_dir", "/mnt/models", "--model_name", "credit-risk", "--host", "0.0.0.0", "--http_port", "8080", "--workers", "2"]
