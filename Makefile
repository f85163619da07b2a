# ranksrgan developer commands. `make install` creates .venv; every other target uses it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The tested torch pair; override for another CUDA build, e.g. `make install TORCH="torch torchvision"`.
TORCH ?= torch==2.14.1 torchvision==0.29.1
# Exact versions of every other package the suite last passed with (torch and its CUDA wheels are
# pinned by TORCH). `pip install -e .` alone uses only the tested bounds of setup.cfg.
CONSTRAINTS ?= constraints.txt
LATEST_VENV ?= .venv-latest

.PHONY: install test test-all demo lint bench clean check-latest constraints

install:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip setuptools wheel
	$(BIN)/python -m pip install $(TORCH)
	$(BIN)/python -m pip install -c $(CONSTRAINTS) -e ".[dev,sweep]"

# An upgrade found on purpose: a separate virtualenv with the newest versions setup.cfg allows, then
# the fast suite. When it passes, `make constraints VENV=$(LATEST_VENV)` records those versions.
check-latest:
	test -x $(LATEST_VENV)/bin/python || $(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install --upgrade pip setuptools wheel
	$(LATEST_VENV)/bin/python -m pip install --upgrade $(TORCH)
	$(LATEST_VENV)/bin/python -m pip install --upgrade --upgrade-strategy eager -e ".[dev,sweep]"
	WANDB_MODE=offline $(LATEST_VENV)/bin/python -m pytest -q

# Rewrite $(CONSTRAINTS) from the packages of $(VENV) (run after the suite passed there).
constraints:
	{ echo "# Versions the test suite last passed with; written by \`make constraints\` (torch: see TORCH in the Makefile)."; \
	  $(BIN)/python -m pip list --format=freeze --exclude-editable \
	  | grep -viE '^(torch|torchvision|triton|nvidia-[a-z0-9-]+|cuda-[a-z0-9-]+|pip|setuptools|wheel)==' ; } > $(CONSTRAINTS).tmp
	mv $(CONSTRAINTS).tmp $(CONSTRAINTS)

# Fast suite (slow tests deselected in setup.cfg); a few minutes on 2 CPU cores.
test:
	WANDB_MODE=offline $(BIN)/python -m pytest -q

# Everything, including the slow end-to-end runs (DDP, the demo pipeline).
test-all:
	WANDB_MODE=offline $(BIN)/python -m pytest -q -m "slow or not slow"

# The paper's whole pipeline on the built-in demo images, 3 seeds of SRGAN and RbRi (6 to 7 minutes on 2 CPU cores).
demo:
	WANDB_MODE=offline $(BIN)/python train.py experiment=demo

lint:
	$(BIN)/python -m ruff check src tests benchmarks train.py
	$(BIN)/python -m ruff format --check src tests benchmarks train.py

bench:
	$(BIN)/python benchmarks/bench_data.py
	$(BIN)/python benchmarks/bench_niqe.py
	$(BIN)/python benchmarks/bench_ma.py
	$(BIN)/python benchmarks/bench_ranker.py
	$(BIN)/python benchmarks/bench_gan.py
	$(BIN)/python benchmarks/bench_upscale.py

clean:
	rm -rf ranksrgan_runs .pytest_cache .ruff_cache
