# syntax=docker/dockerfile:1
# chargeback: the daemon in a small image (issue 6).
#
#   docker build -t chargeback .
#   docker run -p 8000:8000 -v chargeback-data:/var/lib/chargeback \
#     -e CHARGEBACK_TENANTS__PROD__PLUGIN_SETTINGS__API_KEY=... chargeback
#
# Stage 1 installs the locked dependencies (uv.lock, no dev group) and the project into
# a virtual environment; stage 2 copies only that environment onto a clean slim base.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
# The same uv as the Makefile pins, from PyPI.
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_PROJECT_ENVIRONMENT=/opt/chargeback/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_NO_CACHE=1
WORKDIR /src
# Dependencies first: this layer is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
# Then the project itself, installed as a wheel (not editable: /src is not in the image).
COPY src ./src
RUN uv sync --frozen --no-dev --no-editable

FROM ${PYTHON_IMAGE} AS runtime
# tini as PID 1: it forwards SIGTERM/SIGINT/SIGHUP/SIGUSR1 to the daemon and reaps
# zombies, the same under `docker run`, compose and Kubernetes (which has no --init).
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 chargeback \
    && useradd --system --uid 10001 --gid chargeback --no-create-home \
       --home-dir /var/lib/chargeback --shell /usr/sbin/nologin chargeback \
    && mkdir -p /var/lib/chargeback /etc/chargeback \
    && chown chargeback:chargeback /var/lib/chargeback
COPY --from=builder /opt/chargeback/venv /opt/chargeback/venv
# The documented default configuration; mount another file over it (ConfigMap) or
# override single values with CHARGEBACK_* environment variables. Its "demo" tenant
# expects ccloud_sim on loopback: deploy/compose points it at the sim's container.
COPY settings.yaml /etc/chargeback/settings.yaml
ENV PATH=/opt/chargeback/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CHARGEBACK_HTTP__HOST=0.0.0.0 \
    CHARGEBACK_STORAGE__PATH=/var/lib/chargeback/chargeback.db
# The SQLite database (with its -wal and -shm files), the pid file and the CSV output.
VOLUME ["/var/lib/chargeback"]
WORKDIR /var/lib/chargeback
USER 10001:10001
EXPOSE 8000
# Liveness of the event loop; no curl in slim, so a Python one-liner (non-2xx -> exit 1).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('CHARGEBACK_HTTP__PORT', '8000') + '/healthz', timeout=4)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["chargeback", "run", "--config", "/etc/chargeback/settings.yaml"]
