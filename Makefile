# The two commands: `make demo` and `make test`. Everything installs into .venv: what running
# needs for `make demo`, and the test tools (pytest, Playwright, schemathesis…) for `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# The demo's address: links in its mail point here, and it serves its watched pages here.
DEMO_URL := http://$(HOST):$(PORT)

.PHONY: demo demo-digests test install install-runtime lint format migrate bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# What running needs (`pip install -e .`): enough for the demo and for migrate.
$(VENV)/.installed-runtime: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# The test tools, on top of what running needs.
$(VENV)/.installed: $(VENV)/.installed-runtime
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install-runtime: $(VENV)/.installed-runtime

install: $(VENV)/.installed

# A throwaway secret the demo's processes share (it signs the links in its mail).
$(VENV)/.demo-secret-key: | $(BIN)/python
	$(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(50))' > $@

# The demo runs as visitors get the site (DEBUG off: its own 404 page), links its mail to
# HOST:PORT, and lets the fetch guard through to its own watched pages there (and to any
# TRACKER_FETCH_ALLOW given).
DEMO_ENV = TRACKER_DEMO=1 TRACKER_BASE_URL=$(DEMO_URL) \
	SECRET_KEY="$$(cat $(VENV)/.demo-secret-key)" \
	ALLOWED_HOSTS="$${ALLOWED_HOSTS:-$(HOST),localhost,127.0.0.1}" \
	TRACKER_FETCH_ALLOW="$${TRACKER_FETCH_ALLOW:+$$TRACKER_FETCH_ALLOW,}$(HOST):$(PORT)"

# Once the server answers, due sources are checked every 15 s in the background (no Celery
# worker needed): the demo's own watched pages show versions, a change alert and feed entries
# within the first minute.
demo: $(VENV)/.installed-runtime $(VENV)/.demo-secret-key
	$(DEMO_ENV) $(BIN)/python manage.py migrate --no-input
	$(DEMO_ENV) $(BIN)/python manage.py load_demo --demo-user
	@echo "Serving Tracker on $(DEMO_URL)/ (staff: $(DEMO_URL)/admin/ as demo/demo or editor/editor; Ctrl-C stops it)"
	export $(DEMO_ENV); \
	{ for _ in $$(seq 30); do \
		$(BIN)/python -c 'import socket; socket.create_connection(("$(HOST)", $(PORT)), 1)' \
			2>/dev/null && break; \
		sleep 1; \
	done; exec $(BIN)/python manage.py check_sources --watch 15; } & \
	trap 'kill $$! 2>/dev/null' EXIT INT TERM; \
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

# Send this period's digests now, as the demo would, with its links and secret.
demo-digests: $(VENV)/.installed-runtime $(VENV)/.demo-secret-key
	$(DEMO_ENV) $(BIN)/python manage.py send_digests --now

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Benchmarks print their figures; bench/api.py and bench/workers.py need PostgreSQL in DATABASE_URL.
bench: install
	$(BIN)/python -m pip install --quiet -e '.[test,server,bench]'
	$(BIN)/python bench/check_sources.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/load.py
	$(BIN)/python bench/digests.py
	$(BIN)/python bench/public_pages.py
	$(BIN)/python bench/importing.py
	$(BIN)/python bench/workers.py

migrate: install-runtime
	$(BIN)/python manage.py migrate

clean:
	rm -rf $(VENV) db.sqlite3 .pytest_cache .ruff_cache
