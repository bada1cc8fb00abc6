# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install redis test lint demo bench-ingest bench-dial bench-report bench-agent bench-pacer bench-soak bench-api clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

redis:
	@scripts/ensure-redis.sh

test: install redis
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check dialer agent_worker tests bench
	$(BIN)/mypy

demo: install redis
	$(BIN)/dialer demo

bench-ingest: install redis
	$(BIN)/python bench/ingest.py

bench-dial: install redis
	$(BIN)/python bench/dial.py

# Starts its own redis-server; `redis` only makes sure one is installed.
bench-pacer: install redis
	$(BIN)/python bench/pacer.py

bench-report: install redis
	$(BIN)/python bench/report.py

bench-agent: install
	$(BIN)/python bench/agent.py

# The soak starts (and twice restarts) its own redis-server; `redis` only makes sure one is installed.
bench-soak: install redis
	$(BIN)/python bench/soak.py

bench-api: install redis
	$(BIN)/python bench/api_upload.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
