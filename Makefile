# The project's command surface. Every target bootstraps uv when it is missing,
# so a fresh machine needs only Python >= 3.11 and make.

SHELL := /bin/bash
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
PYTHON ?= python3

.PHONY: help install run test ui sample fixtures bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

$(CURDIR)/.tools/bin/uv:
	$(PYTHON) -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet uv

# --compile-bytecode: Python then never compiles the dependencies at import, even where
# PYTHONDONTWRITEBYTECODE keeps it from caching them (about 3 s off every `pipeline run`);
# `install` compiles the project's own modules the same way.
.venv/.synced: $(UV) pyproject.toml uv.lock Makefile
	$(UV) sync --frozen --compile-bytecode
	@touch $@

install: .venv/.synced  ## create .venv with the locked dependencies
	@# The project's own bytecode too (up-to-date files are skipped; __pycache__ is git-ignored).
	@$(UV) run --frozen python -m compileall -q pipeline benchmarks > /dev/null

run: install  ## run the whole pipeline on data/raw and print the province summary
	@mkdir -p "$(DAGSTER_HOME)"
	$(UV) run pipeline run

test: install  ## run the test suite
	$(UV) run pytest

ui: install  ## start the Dagster UI (webserver + daemon) on http://127.0.0.1:3000
	@mkdir -p "$(DAGSTER_HOME)"
	@# As `pipeline run` does (runner.prepare_dagster_home): the project's settings, never over an existing file.
	@test -e "$(DAGSTER_HOME)/dagster.yaml" || cp pipeline/defs/dagster_home.yaml "$(DAGSTER_HOME)/dagster.yaml"
	$(UV) run dagster dev -w workspace.yaml -h 127.0.0.1 -p $${PORT:-3000}

sample: install  ## regenerate the bundled sample returns in data/raw/2016-06
	$(UV) run python -m pipeline.sample.generate --period 2016-06 --out data/raw/2016-06 --seed 20160630

fixtures: install  ## regenerate the test corpus (needs LibreOffice for .xls/.ods)
	$(UV) run python -m tests.fixtures.make_fixtures

bench: install  ## run the benchmark and write benchmarks/results.md
	$(UV) run python -m benchmarks.run

clean:  ## remove the warehouse, reports, archive and Dagster history (keeps data/raw)
	rm -rf data/warehouse/*.duckdb data/warehouse/archive data/warehouse/cache data/warehouse/reports data/warehouse/last_run_inputs.json \
	       data/warehouse/feedback data/warehouse/.build "$(DAGSTER_HOME)"
