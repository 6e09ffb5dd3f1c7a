# The README's commands. Each target creates the virtualenv and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test dev lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

# The dbt manifest is built here (make, CI), never at import; re-parsed when a dbt file changes.
DBT_DIR := dataeng_assets/dbt_project
MANIFEST := $(DBT_DIR)/target/manifest.json
DBT_FILES := $(shell find $(DBT_DIR) -path $(DBT_DIR)/target -prune -o -type f \( -name '*.sql' -o -name '*.yml' -o -name '*.csv' \) -print)

$(MANIFEST): $(STAMP) $(DBT_FILES)
	$(BIN)/python -c "from dataeng_assets.lib.dbt import prepare_manifest; prepare_manifest(force=True)"

install: $(STAMP) $(MANIFEST)

## The main job: a small world, every asset for its 7 days, the checks, a summary.
demo: $(STAMP) $(MANIFEST)
	$(BIN)/dataeng demo $(ARGS)

## The test suite (starts its own PostgreSQL and S3 servers).
test: $(STAMP) $(MANIFEST)
	$(BIN)/pytest $(PYTEST_ARGS)

## Webserver + daemon on the data home (http://127.0.0.1:3000).
dev: $(STAMP) $(MANIFEST)
	$(BIN)/dataeng dev

lint: $(STAMP)
	$(BIN)/ruff check dataeng_assets dataeng_assets_tests bench

bench: $(STAMP)
	$(BIN)/python bench/user_analytics.py $(ARGS)
	$(BIN)/python bench/optimizer.py

clean:
	rm -rf .dataeng .pytest_cache
