# Tollgate: one image for every process. The Makefile's targets say how each starts:
#   web (the default), worker, beat:  make web | make worker | make beat
# with PY=python, as there is no virtualenv inside the image. docker-compose.yml runs them.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PY=python \
    BIND=0.0.0.0:8000 \
    TOLLGATE_VAR_DIR=/var/lib/tollgate \
    TOLLGATE_STORAGE_DIR=/var/lib/tollgate/storage

RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Runtime dependencies only (no dev requirements); a layer of its own so code changes reuse it.
COPY requirements.txt ./
RUN python -m pip install -r requirements.txt

COPY . .

# Static files are collected at build with the production settings. The secret key here is a dummy that
# exists only for this one command; the running container must be given a real one.
RUN DJANGO_SETTINGS_MODULE=controlplane.settings.production \
    DJANGO_SECRET_KEY=build-time-dummy-not-used-at-run-time \
    python manage.py collectstatic --noinput \
    && python -m compileall -q controlplane governance monitoring

# The code stays owned by root (read-only to the process); only the data folder is the app user's.
# A fresh named volume mounted at TOLLGATE_STORAGE_DIR takes over this ownership.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/tollgate --shell /usr/sbin/nologin tollgate \
    && mkdir -p "$TOLLGATE_STORAGE_DIR" \
    && chown -R tollgate:tollgate "$TOLLGATE_VAR_DIR"

USER tollgate
EXPOSE 8000
CMD ["make", "--no-print-directory", "web"]
