# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install redis test lint demo bench bench-ingest bench-dial bench-report bench-agent bench-pacer bench-soak bench-api clean

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

# Every benchmark of the figure table in one run (dial and pacer at their issue sizes), then the table (figure | ours | peer | ratio | target | met?).
# Each script appends its rows to $(BENCH_JSON) (bench/figures.py says the format). The default
# size finishes in about 10 minutes on the 2-core machine; `make bench BENCH_SIZE=1000000` gives
# the figures bench/README.md quotes. The soak is not part of it (`make bench-soak`).
BENCH_SIZE ?= 200000
BENCH_XLSX_SIZE ?= 100000
BENCH_REPEAT ?= 3
BENCH_JSON ?= bench/out/figures.jsonl

bench: install redis
	@mkdir -p $(dir $(BENCH_JSON)) && rm -f $(BENCH_JSON)
	BENCH_JSON=$(BENCH_JSON) $(BIN)/python bench/ingest.py --rows $(BENCH_SIZE) --repeat $(BENCH_REPEAT)
	BENCH_JSON=$(BENCH_JSON) $(BIN)/python bench/report.py --contacts $(BENCH_SIZE) --xlsx-contacts $(BENCH_XLSX_SIZE)
	BENCH_JSON=$(BENCH_JSON) $(BIN)/python bench/dial.py
	BENCH_JSON=$(BENCH_JSON) $(BIN)/python bench/pacer.py
	BENCH_JSON=$(BENCH_JSON) $(BIN)/python bench/agent.py
	BENCH_JSON=$(BENCH_JSON) $(BIN)/python bench/api_upload.py --rows $(BENCH_SIZE)
	@$(BIN)/python bench/table.py $(BENCH_JSON)

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
