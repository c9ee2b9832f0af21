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

# pip's own lines (and, in a terminal, its progress bars) show the first install's progress; later runs skip it.
$(STAMP): requirements.txt requirements-dev.txt
	@echo "Tollgate: installing the requirements into $(VENV) (this takes a few minutes the first time) ..."
	@test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	@$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(VENV)/bin/python -m pip install --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

migrate:
	$(PY) manage.py migrate --noinput

# One progress line per phase; the seed's logs go to var/seed_demo.log, and the server prints the personas'
# credentials and the URLs once it listens: the last lines on the screen.
run: install
	@echo "Tollgate: migrating the database ..."
	@$(PY) manage.py migrate --noinput --verbosity 0
	@$(PY) manage.py seed_demo --serve $(BIND)

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
	$(VENV)/bin/lint-imports --no-cache

format: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .
