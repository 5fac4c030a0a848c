# The two commands: `make demo` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test install lint format migrate bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# The demo checks due sources every 30 s in the background (no Celery worker needed).
demo: install
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py load_demo --demo-user
	@echo "Serving Tracker on http://$(HOST):$(PORT)/ (staff: /admin/ as demo/demo or editor/editor; Ctrl-C stops it)"
	$(BIN)/python manage.py check_sources --watch 30 & \
	trap 'kill $$! 2>/dev/null' EXIT INT TERM; \
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

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

# Benchmarks print their figures; bench/api.py needs PostgreSQL in DATABASE_URL.
bench: install
	$(BIN)/python -m pip install --quiet -e '.[test,server]'
	$(BIN)/python bench/check_sources.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/load.py
	$(BIN)/python bench/digests.py
	$(BIN)/python bench/public_pages.py
	$(BIN)/python bench/importing.py

migrate: install
	$(BIN)/python manage.py migrate

clean:
	rm -rf $(VENV) db.sqlite3 .pytest_cache .ruff_cache
