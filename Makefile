# Two commands from a fresh clone, with nothing installed but Python 3.10+ and make:
#
#   make demo   sets up .venv and runs the lecture's job: train "hihello", then predict hihell
#   make test   sets up .venv with the test extra and runs the suite, as CI (.ci/run) does
#
# Both install torch's CPU build where there is no NVIDIA GPU (`nvidia-smi`) and PyTorch's CPU
# index can be reached: on Linux, PyPI's torch wheel bundles CUDA, several GB that a CPU never
# uses. Where that index cannot be reached (a machine that sees only a mirror of PyPI), pip's
# own configuration decides. Set TORCH_INDEX to choose.
# The browser tests also need Debian's chromium and chromium-driver, and the page's WebAssembly
# check wabt (`sudo apt-get install chromium chromium-driver wabt`); without them those tests
# skip, except under CI=1, where they fail.

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
CPU_INDEX := https://download.pytorch.org/whl/cpu
GPU := $(shell command -v nvidia-smi 2>/dev/null)
# asked once, and only when the CPU index is wanted: does its host resolve (3 s at most)?
REACHABLE = $(shell $(PYTHON) -c "import socket; socket.setdefaulttimeout(3); \
	socket.getaddrinfo('download.pytorch.org', 443)" 2>/dev/null && echo yes)
TORCH_INDEX ?= $(if $(GPU),,$(if $(REACHABLE),$(CPU_INDEX)))

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
	$(BIN)/python -c "import torch" 2>/dev/null || $(PIP) "$(TORCH)" $(if $(TORCH_INDEX),--index-url "$(TORCH_INDEX)")
	touch $@

$(VENV)/.charnext: pyproject.toml $(VENV)/.torch
	$(PIP) -e .
	touch $@

$(VENV)/.charnext-test: pyproject.toml $(VENV)/.torch
	$(PIP) -e ".[test]"
	touch $@
