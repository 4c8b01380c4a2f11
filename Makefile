# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv if absent.
# Torch is pinned to the build that lies on this machine's disk (torch 2.14.1 + torchvision 0.29.1, usable on CPU);
# pip never downloads a different multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
# Every install below takes the tested releases of constraints.txt (`make lock` refreshes them).
CONSTRAINTS := constraints.txt
PIP_INSTALL := $(PIP) install -c $(CONSTRAINTS)
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
DEMO_EXTRAS := analysis
TEST_EXTRAS := analysis,vision,community,tf,ray,data,dev
DEMO_OUT ?= out/demo
PYTEST_ARGS ?=
PYTEST_WORKERS ?= auto

# Read by OpenMP (torch, scikit-learn, LightGBM) once, when it loads: the values of runner/runtime/threads.py
# THREAD_ENVIRONMENT, which the `runner` entry point and the test session also set (a value already set wins).
demo test: export OMP_WAIT_POLICY ?= PASSIVE
# Python's own bytecode cache (__pycache__/, git-ignored; each file checked against its source by Python) for the
# test run, also where the environment turns it off (PYTHONDONTWRITEBYTECODE=1 on the CI machine): every xdist worker
# and every `runner` process the tests start otherwise compiles the project's and the tests' modules from source again
# (~3 CPU-s of a collection).
test: export PYTHONDONTWRITEBYTECODE =

.PHONY: demo test install install-test install-gpu lock lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: | $(PY)
	$(PIP_INSTALL) $(TORCH_PINS)
	touch $@

$(VENV)/.demo-deps: pyproject.toml $(CONSTRAINTS) $(VENV)/.torch
	$(PIP_INSTALL) $(TORCH_PINS) -e '.[$(DEMO_EXTRAS)]'
	touch $@

$(VENV)/.test-deps: pyproject.toml $(CONSTRAINTS) $(VENV)/.torch
	$(PIP_INSTALL) $(TORCH_PINS) -e '.[$(TEST_EXTRAS)]'
	touch $@

install: $(VENV)/.demo-deps
install-test: $(VENV)/.test-deps

## install-gpu: the TensorFlow stack for CXR Foundation on a GPU: TensorFlow (the `tf` extra) and, in a folder of their
## own ($(VENV)/tf-cuda12), the CUDA-12 libraries its `and-cuda` extra lists; torch keeps its CUDA-13 ones. TensorFlow
## encoders run in a child process that puts that folder first on LD_LIBRARY_PATH (runner/encoders/tf_runtime.py).
## Installs on a CPU machine too (~4.2 GB more); `runner doctor` then shows what each framework sees.
install-gpu: $(VENV)/.gpu-deps

$(VENV)/.gpu-deps: pyproject.toml $(CONSTRAINTS) $(VENV)/.torch
	$(PIP_INSTALL) $(TORCH_PINS) -e '.[tf]'
	$(PY) -m runner.encoders.tf_runtime requirements > $(VENV)/tf-cuda12.txt
	$(PIP) install --no-deps --upgrade --target $(VENV)/tf-cuda12 -r $(VENV)/tf-cuda12.txt
	touch $@

## demo: synthetic DICOM data set -> sample -> embed (built-in encoders) -> LightGBM -> results -> static site
demo: $(VENV)/.demo-deps
	$(VENV)/bin/runner validate
	$(VENV)/bin/runner demo --out $(DEMO_OUT)

## test: the whole test suite on CPU (installs Debian's chromium for the browser test when missing), in
## PYTEST_WORKERS processes forked after collection (tests/fork_workers.py; whole files per worker, so a module's
## fixtures are built once; 0: none; auto: one per core, three times the other runnable processes on a shared machine,
## tests/worker_count.py), files handed out in collection order (tests/conftest.py puts the long files first and the
## files that read the shared real site last, while its build runs in a process of its own), the 25 slowest steps
## listed at the end. pytest-xdist's `-n N` still runs the suite too.
test: $(VENV)/.test-deps
	$(VENV)/bin/runner validate
	$(PY) -m pytest -m "not slow" --fork-workers $(PYTEST_WORKERS) --durations=25 $(PYTEST_ARGS)

## lock: the newest releases pyproject.toml's ranges allow (torch stays at TORCH_PINS), resolved in a scratch venv and
## written to constraints.txt below its comment lines; run `make test` on the new pins before committing them.
lock:
	scratch=$$(mktemp -d) && $(PYTHON) -m venv $$scratch && \
	$$scratch/bin/pip --disable-pip-version-check -q install $(TORCH_PINS) -e '.[$(TEST_EXTRAS)]' && \
	{ grep '^#' $(CONSTRAINTS); $$scratch/bin/pip freeze --exclude-editable | sort -f; } > $(CONSTRAINTS).new && \
	mv $(CONSTRAINTS).new $(CONSTRAINTS); status=$$?; rm -rf $$scratch $(CONSTRAINTS).new; exit $$status

lint: $(VENV)/.test-deps
	$(VENV)/bin/ruff check registry runner leaderboard tests benchmarks

clean:
	rm -rf $(VENV) out site .pytest_cache
