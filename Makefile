# glm_live: the two set-up commands are `make demo` and `make test`; both create .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
NOTEBOOKS := $(wildcard notebooks/*.ipynb)

.PHONY: demo test bench soak fuzz lint vendor clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "glm_live needs Python 3.11 or newer: run e.g. make PYTHON=python3.12 ..."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(VENV)/.demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[demo]'
	touch $@

# Jupyter refuses to run as root unless told; containers and CI machines often are root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

demo: $(VENV)/.demo
	$(BIN)/jupyter lab $(ROOT_FLAG) notebooks/01-quickstart.ipynb

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The browser test runs whenever Chromium is installed, the Redis hub's tests whenever
# redis-server is (.ci/run installs both from Debian's packages).
CHROMIUM := $(shell command -v chromium 2>/dev/null)
REDIS    := $(shell command -v redis-server 2>/dev/null)
MISSING  := $(strip $(if $(CHROMIUM),,browser) $(if $(REDIS),,redis))
DESELECT := $(if $(CHROMIUM),$(if $(REDIS),,-m "not redis"),\
	$(if $(REDIS),-m "not browser",-m "not browser and not redis"))

test: lint
	$(if $(MISSING),@echo "not installed and so not tested here: $(MISSING) (see .ci/run)")
	$(BIN)/python -m pytest tests $(DESELECT) \
		$(if $(NOTEBOOKS),--nbmake $(NOTEBOOKS))

bench: $(VENV)/.dev
	$(BIN)/python benchmarks/sse_decode.py
	$(BIN)/python benchmarks/sse_memory.py
	$(BIN)/python benchmarks/sim_throughput.py
	$(BIN)/python benchmarks/hub_fanout.py
	$(BIN)/python benchmarks/recorder.py
	$(BIN)/python benchmarks/widget_updates.py
	$(BIN)/python benchmarks/loadgen_accuracy.py
	$(BIN)/python benchmarks/dask_shards.py
	$(BIN)/python benchmarks/token_to_pixel.py  # says it is skipped without chromium
	$(BIN)/python benchmarks/trace_replay.py --runs 3
	$(BIN)/python benchmarks/telemetry_cost.py

# Not part of bench or test: a million messages through the hub, clients joining, leaving and
# restarting, 1% of their connections cut; fails on any loss, duplicate, or RSS/fd growth.
# `python benchmarks/hub_soak.py --quick` tries it with 50 000.
soak: $(VENV)/.dev
	$(BIN)/python benchmarks/hub_soak.py

# Not part of test (which runs a few seconds of it: tests/test_sse_fuzz.py): the SSE decoder
# against a reference written from the standard, fed whole and cut anywhere, with atheris where
# it installs and hypothesis otherwise. `make fuzz FUZZ_SECONDS=60` for a shorter run.
FUZZ_SECONDS ?= 600
fuzz: $(VENV)/.dev
	@$(BIN)/python -m pip install --quiet atheris 2>/dev/null || \
		echo "atheris does not install here: fuzzing with hypothesis instead"
	$(BIN)/python -m tests.fuzz_sse --seconds $(FUZZ_SECONDS)

# Rebuilds glm_live/notebook/widgets/static/vendor/markdown-it.js from the pinned markdown-it
# (needs node and npm; esbuild is tests/node's: `cd tests/node && npm ci`). Not part of test.
vendor:
	scripts/vendor-markdown-it.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
