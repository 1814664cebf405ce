# The two commands: `make demo` and `make test`. Both create or reuse .venv.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DEMO   ?= build/demo
HOST   ?= 127.0.0.1
PORT   ?= 5000
SIMULATE ?= 0

.PHONY: venv venv-dev demo demo-check demo-pipeline test lint report bench bench-gpu bench-server clean system-test system-demo system-bench

# What the targets need beyond Python (Chromium, PostgreSQL, nginx; Python >= 3.11):
# installed with apt-get as root or through passwordless sudo, else one line saying how.
system-test system-demo system-bench:
	PYTHON=$(PYTHON) VENV=$(VENV) sh scripts/setup-system.sh $(@:system-%=%)

$(VENV)/.req-stamp: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -r requirements.txt
	touch $@

$(VENV)/.dev-stamp: requirements-dev.txt $(VENV)/.req-stamp
	$(PY) -m pip install -r requirements-dev.txt
	touch $@

venv: $(VENV)/.req-stamp
venv-dev: $(VENV)/.dev-stamp

# The machine side on the bundled demo images, then the server on the demo experiment.
demo-pipeline: system-demo venv
	$(PY) -m experiments demo $(DEMO)

# A taken PORT or a bad SIMULATE stops `make demo` at once, before anything is built; the
# pipeline runs after the check even under `make -j`.
demo-check:
	@HOST=$(HOST) PORT=$(PORT) PY=$(PYTHON) SIMULATE=$(SIMULATE) sh scripts/demo-serve.sh --check

demo: demo-check
	@$(MAKE) --no-print-directory demo-pipeline
	DEMO=$(DEMO) HOST=$(HOST) PORT=$(PORT) PY=$(PY) SIMULATE=$(SIMULATE) sh scripts/demo-serve.sh

# The report for the demo experiment from the answers given so far.
report: system-demo venv
	$(PY) -m analysis report --db sqlite:///$(abspath $(DEMO))/server.sqlite3 --experiment demo --out $(DEMO)/report \
	    $(if $(wildcard $(DEMO)/experiments/demo.json),--experiment-file $(DEMO)/experiments/demo.json)

test: system-test venv-dev
	$(PY) -m pytest

# ruff over the whole tree (pyproject.toml); CI runs it before the tests.
lint: venv-dev
	$(PY) -m ruff check .

bench: system-bench venv-dev
	$(PY) benchmarks/bench_features.py
	$(PY) benchmarks/bench_retrieval.py
	$(PY) benchmarks/bench_evaluate_scale.py --pairs 100000
	$(MAKE) bench-server

# The server's answer paths against the floor (bench_server.py's table), through nginx too, and
# the think-time capacity; about 10 minutes on a quiet 2-CPU machine (a hard limit of 15).
bench-server: system-bench venv-dev
	timeout 900 $(PY) benchmarks/bench_server.py --nginx --capacity 250 500 1000 1500 2000

# Images/s of every backbone on one device as a share of its measured matmul rate; under
# 5 minutes on one GPU (the CPU path: benchmarks/bench_gpu.py --device cpu --tiny).
bench-gpu: venv-dev
	timeout 300 $(PY) benchmarks/bench_gpu.py

clean:
	rm -rf build .pytest_cache
