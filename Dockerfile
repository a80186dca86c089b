# dlgpu: the test image.  The README's set-up commands are the source of truth: this file runs its
# `pip install -e ".[test]"` and its pytest command (tests/test_docker.py checks the two match).
#
#   CPU (default):  docker build -t dlgpu .
#   GPU:            docker build -t dlgpu:gpu --build-arg BASE=nvidia/cuda:13.0.1-runtime-ubuntu24.04 \
#                       --build-arg EXTRAS=cuda13,test --build-arg PIP_EXTRA_INDEX_URL= .
#   run the tests:  docker run --rm [--gpus all] -e DLGPU_DATASETS=/data -v "$PWD/../shared/data:/data:ro" dlgpu
#
# Without DLGPU_DATASETS the tests that need the real MNIST files skip and say why.

# Pinned tags: a rebuild months from now gets the same Python and the same Debian.
ARG BASE=python:3.11.7-slim-bookworm
FROM ${BASE}

# Extras of the final `pip install -e`; the GPU build adds cuda13 (or gpu for CUDA 12).
ARG EXTRAS=test
# CPU image: torch (a test dependency) from its CPU-only index, a fraction of the CUDA wheels' size.
# Build arguments reach RUN as environment variables, so pip picks this up without a flag.
ARG PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# The CUDA images ship no Python: install the distribution's (3.12 on Ubuntu 24.04) only when missing.
# Its version is whatever that base's archive carries, so apt pins would break with the next security update.
# hadolint ignore=DL3008
RUN if ! command -v python3 >/dev/null 2>&1; then \
        apt-get update \
        && apt-get install -y --no-install-recommends python3 python3-venv \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin dlgpu \
    && python3 -m venv "$VIRTUAL_ENV" \
    && mkdir /app \
    && chown -R 10001:10001 "$VIRTUAL_ENV" /app

# Numeric, so a host without this user name still resolves it (and runtimes can check it is not root).
USER 10001
WORKDIR /app

# Dependencies first, from pyproject.toml alone (over placeholder sources): this layer is rebuilt only
# when the dependencies change, not on every edit of the code.  Same command as below and in the README.
COPY --chown=10001:10001 pyproject.toml ./
RUN mkdir -p dlgpu kernels \
    && touch README.md dlgpu/__init__.py \
    && pip install -e ".[${EXTRAS}]"

# Then the code, installed the way the README installs it (the dependencies are already there).
COPY --chown=10001:10001 . .
RUN pip install -e ".[${EXTRAS}]"

# First line of every run: where dlgpu computes (the GPU, or the CPU and why); then the command.
ENTRYPOINT ["/bin/sh", "/app/docker/entrypoint.sh"]
CMD ["python", "-m", "pytest", "-n", "2"]
