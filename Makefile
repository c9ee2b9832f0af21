# The two commands: `make run` (console and API on the embedded default, with demo data) and `make test`.
# The process targets (web, worker, beat) are the one definition of how each process starts: .ci/run and
# docker-compose.yml both call them.

VENV ?= .venv
PY ?= $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-12)
BIND ?= 127.0.0.1:8000
WEB_WORKERS ?= 3
WORKER_CONCURRENCY ?= 2
QUEUES ?= default,checks,reports
PYTEST_ARGS ?=

.PHONY: install run migrate web worker beat test lint format

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $@

migrate:
	$(PY) manage.py migrate --noinput

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	@echo "Tollgate: console http://$(BIND)/console/  API http://$(BIND)/api/v1/  docs http://$(BIND)/api/docs/"
	$(PY) manage.py runserver --noreload $(BIND)

web:
	$(PY) -m gunicorn controlplane.wsgi:application --bind $(BIND) --workers $(WEB_WORKERS) \
		--access-logfile - --forwarded-allow-ips "*"

worker:
	$(PY) -m celery -A controlplane worker --queues $(QUEUES) --concurrency $(WORKER_CONCURRENCY) --loglevel INFO

beat:
	$(PY) -m celery -A controlplane beat --loglevel INFO

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .
