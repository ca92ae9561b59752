# `make demo` runs the main job on embedded data; `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Two installs: what a user needs (datakit and torch: the demo, benches) and, on top, what the
# tests need (pytest, Ray, datasets, mkdocs...), so that a first `make demo` does not wait
# for the test tools (about 25 s of its install on two cores).
USER_STAMP := $(VENV)/.datakit-user-installed
STAMP      := $(VENV)/.datakit-installed

.PHONY: install test test-fast demo docs bench bench-gpu clean

$(USER_STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[train]'
	touch $(USER_STAMP)

$(STAMP): $(USER_STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[train,test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q -ra

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -ra -m "not slow"

demo: $(USER_STAMP)
	$(BIN)/datakit demo --out demo

docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir build/site

bench: $(USER_STAMP)
	$(BIN)/python bench/ingest
	$(BIN)/python bench/train
	$(BIN)/python bench/audit

# The GPU path end to end (train, resume, resume on the CPU, sample; speed against the
# textbook loop) on whatever device is here; BENCH_GPU_FLAGS=--quick for a short CPU run.
bench-gpu: $(USER_STAMP)
	$(BIN)/python bench/gpu $(BENCH_GPU_FLAGS)

clean:
	rm -rf $(VENV) demo build *.egg-info
