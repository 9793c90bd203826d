# The app image: Flask under gunicorn serving the model from the shared volume.
#   podman build -f Dockerfile.app --secret id=pip_ca,src=/etc/ssl/certs/ca-certificates.crt .
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS builder
WORKDIR /src
COPY requirements/app.txt requirements/
# Only the `app` dependency group, from its lock (`make lock`): every package pinned with
# its hashes, the versions the tests ran on. Our own code is copied, not installed; pip and
# the setuptools some bases' venvs bring are removed, so the venv holds exactly the lock.
# An optional CA bundle (build secret pip_ca) lets pip through a TLS-inspecting proxy; it is
# mounted for this step only and never lands in a layer.
RUN --mount=type=secret,id=pip_ca \
    python3 -m venv /opt/venv \
    && if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check \
       --require-hashes --no-deps -r requirements/app.txt \
    && /opt/venv/bin/pip uninstall --yes pip setuptools \
    && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} +

FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/ai-app/ai-app
LABEL org.opencontainers.image.title="ai-app" \
      org.opencontainers.image.description="Flask inference service (Open Inference Protocol) under gunicorn" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=builder /opt/venv /opt/venv
WORKDIR /srv
COPY app ./app
COPY model_spec ./model_spec
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/srv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MODEL_ROOT=/models \
    PROMETHEUS_MULTIPROC_DIR=/run/prometheus
# Fixed non-root UID/GID, the same the chart's securityContext uses.
USER 10001:10001
# 8080: the API (APP_PORT); 9090: metrics (METRICS_PORT), for cluster pods only.
EXPOSE 8080 9090
CMD ["python", "-m", "app.server", "-c", "app/gunicorn.conf.py", "app:create_app()"]
