# Every user-facing target sets the project up first; re-running on a set-up machine is fast.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH_VERSION := 2.13.0
STAMP  := $(VENV)/.sparsemix-setup

.PHONY: setup test test-fast demo bench bench-quick clean

# The runs behind docs/speed.md: one block and one factor, B=4, C=64, N = 2^8 .. 2^14 (~15 min), then
# one block at B=1 up to N = 2^16 against flash attention, appended to the same results (~10 min).
BENCH_ARGS ?= --only factor-B4 block-B4 --max-log2 14 --steps 3 --step-limit-s 20 --budget-min 15
BENCH_LONG_ARGS ?= --only block-B1 --max-log2 16 --steps 2 --step-limit-s 60 --budget-min 12 --append

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile setup.py sparsemix/csrc/slot_mix.cpp
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first and pinned exactly: a bare `torch` would pull a multi-GB CUDA build.
	$(PY) -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$(TORCH_VERSION)')" 2>/dev/null \
	    || $(PIP) install --quiet torch==$(TORCH_VERSION)
	# The package compiles its native kernel (sparsemix._C) against THIS torch, as torch-scatter does:
	# --no-build-isolation, so setup.py sees the pinned torch. A compile error fails `make` here.
	$(PIP) install --quiet "setuptools>=68" wheel
	$(PIP) install --quiet --no-build-isolation -e ".[viz,test]"
	$(PY) -c "from sparsemix.kernels.native import HAS_NATIVE, NATIVE_ERROR; assert HAS_NATIVE, NATIVE_ERROR; print('native kernel: built')"
	# torch-scatter / torch-sparse are source-only on PyPI and compile against the installed torch.
	$(PY) -c "import torch_scatter" 2>/dev/null \
	    || $(PIP) install --quiet --no-build-isolation torch-scatter==2.1.2
	$(PY) -c "import torch_sparse" 2>/dev/null \
	    || $(PIP) install --quiet --no-build-isolation torch-sparse==0.6.18
	$(PY) -c "import torch, torch_geometric, torch_scatter, torch_sparse; print('torch', torch.__version__, '| PyG', torch_geometric.__version__)"
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

demo: setup
	$(PY) -m demos.dna_species --out runs/demo-dna-species

bench: setup
	$(PY) benchmarks/speed.py --out benchmarks/results/speed $(BENCH_ARGS)
	$(PY) benchmarks/speed.py --out benchmarks/results/speed $(BENCH_LONG_ARGS)

bench-quick: setup
	$(PY) benchmarks/speed.py --out /tmp/sparsemix-speed-quick --quick --budget-min 3

clean:
	rm -rf $(VENV) .pytest_cache
