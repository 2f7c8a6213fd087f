# Each target creates or refreshes .venv itself; re-running is fast when nothing changed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv demo test test-isa bench lint clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/omnireid demo

# The suite runs in TEST_WORKERS processes (pytest-xdist; `make test TEST_WORKERS=0` runs it in
# one). On the two-core CI machine, one after the other in the same clone: 4 min 26 s with two
# workers, 7 min 0 s in one process. `make test-isa` stays in one process: its tests share
# expensive session fixtures (the features of the real material), which every worker computes
# again; two workers took 3 min 8 s (tests dealt one by one) and 2 min 31 s (whole files), one
# process 2 min 42 s.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS)

# The tests whose numbers depend on the CPU's instruction set (marker `isa`: the real-material
# tests and the fast-path parity tests), run again with AVX2 forced on PyTorch, oneDNN and NumPy:
# no AVX-512, no AMX, no native bf16. A test that passes only with one CPU's rounding then fails
# on every machine, not only on the next one. .ci/run runs it after `make test`.
ISA_ENV := ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR"

test-isa: $(STAMP)
	$(ISA_ENV) $(PY) -m pytest -q -p no:xdist -m isa

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks checks experiments

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
