# Image every pipeline component runs in (kfp 2.13 + TF 2.16 + TFDV 1.16 + this package), built from
# the same lock as .venvs/pipeline:   credit-risk build-images
# A build stage has the C++ toolchain (pyfarmhash, pinned by TFDV's stack, has no wheel); the
# runtime stage gets only the finished venvs. KFP runs components as uid 10001 here with emptyDirs
# at /.cache, /.config, /.local, /gcs, /s3, /minio, /kfp-launcher; HOME is a directory 10001 owns.
ARG BASE_IMAGE=python:3.11.7-slim-bookworm

# --- build -------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1 \
    UV_SYSTEM_CERTS=1
# uv's package cache: a BuildKit cache mount by default, the host's uv cache with buildah/podman
# (see docker/serving.Dockerfile). Build-time only.
ARG UV_CACHE_DIR=/root/.cache/uv
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ python3-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY locks/build.txt locks/pipeline.txt locks/serving.txt locks/
# The deploy step smoke-tests a model in the serving environment (kserve + TF 2.21) before it gets
# traffic (credit_risk/release/infra_validation.py); that environment cannot share the pipeline's packages.
RUN --mount=type=cache,target=/root/.cache/uv \
    python3 -m venv /opt/build-tools \
    && /opt/build-tools/bin/pip install --no-cache-dir --require-hashes -r locks/build.txt \
    && python3 -m venv /opt/venv && python3 -m venv /opt/serving-venv \
    && /opt/build-tools/bin/uv pip install --python /opt/venv/bin/python --require-hashes --no-deps \
       -r locks/pipeline.txt \
    && /opt/build-tools/bin/uv pip install --python /opt/serving-venv/bin/python --require-hashes \
       --no-deps -r locks/serving.txt
COPY setup.py ./
COPY credit_risk credit_risk
COPY components components
COPY pipelines pipelines
COPY serving serving
RUN /opt/venv/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

# --- runtime: the venvs only; no source tree in the working directory ------------------------------
# Layer order is cache order: the locked dependencies (GBs) come first and change only with the
# locks; this package's wheel and the content hash come last, so a code change rebuilds seconds.
FROM ${BASE_IMAGE}
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2 \
    CREDIT_RISK_SERVING_PYTHON=/opt/serving-venv/bin/python HOME=/home/credit-risk
RUN useradd --uid 10001 --create-home --home-dir /home/credit-risk --shell /usr/sbin/nologin credit-risk
# Java for the history step's Spark local[N] (pyspark 4 needs Java 17+; credit_risk/history). The
# man directory: openjdk's post-install script fails without it on minimal Debian images.
# hadolint ignore=DL3008
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/serving-venv /opt/serving-venv
COPY --from=build /wheels /tmp/wheels
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps /tmp/wheels/*.whl \
    && /opt/serving-venv/bin/pip install --no-cache-dir --no-deps /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels
ARG IMAGE_CONTENT_HASH=unknown
# every image's hash, "name=hash,...": how code inside the image (no source tree) names the images
ARG IMAGE_HASHES=""
LABEL org.opencontainers.image.title="credit-risk-pipeline" \
      io.credit-risk.content-hash="${IMAGE_CONTENT_HASH}"
ENV CREDIT_RISK_IMAGE_HASH=${IMAGE_HASHES}
WORKDIR /home/credit-risk
USER 10001
