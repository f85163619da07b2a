# ranksrgan developer commands. `make install` creates .venv; every other target uses it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The tested torch pair; override for another CUDA build, e.g. `make install TORCH="torch torchvision"`.
TORCH ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install test test-all demo lint bench clean

install:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip setuptools wheel
	$(BIN)/python -m pip install $(TORCH)
	$(BIN)/python -m pip install -e ".[dev,sweep]"

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
