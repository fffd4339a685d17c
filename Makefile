# Two commands from a fresh clone, with nothing installed but Python 3.10+ and make:
#
#   make demo   sets up .venv and runs the lecture's job: train "hihello", then predict hihell
#   make test   sets up .venv with the test extra and runs the suite, as CI (.ci/run) does
#
# Both install torch's CPU build where there is no NVIDIA GPU (`nvidia-smi`): on Linux, PyPI's
# torch wheel bundles CUDA, several GB that a CPU never uses. Set TORCH_INDEX to choose.
# The browser tests also need Debian's chromium and chromium-driver, and the page's WebAssembly
# check wabt (`sudo apt-get install chromium chromium-driver wabt`); without them those tests
# skip, except under CI=1, where they fail.

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX ?= $(if $(shell command -v nvidia-smi 2>/dev/null),https://pypi.org/simple,https://download.pytorch.org/whl/cpu)

BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install -q

.PHONY: demo test

demo: $(VENV)/.charnext
	$(BIN)/charnext train "hihello"
	$(BIN)/charnext predict hihell

test: $(VENV)/.charnext-test
	$(BIN)/python -m pytest -q

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip

# torch first, from TORCH_INDEX: a bare torch requirement with no torch installed pulls CUDA
$(VENV)/.torch: | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(PIP) "$(TORCH)" --index-url "$(TORCH_INDEX)"
	touch $@

$(VENV)/.charnext: pyproject.toml $(VENV)/.torch
	$(PIP) -e .
	touch $@

$(VENV)/.charnext-test: pyproject.toml $(VENV)/.torch
	$(PIP) -e ".[test]"
	touch $@
