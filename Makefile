# Two entry points (the README's two commands): `make demo` and `make test`, each over a local venv in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
DEMO := build/demo

.PHONY: demo test bench clean

# torch first, pinned, only when absent: letting pip resolve a bare `torch` dependency pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

demo: $(VENV)/.installed
	@mkdir -p $(DEMO)
	$(BIN)/python -m motion_core create $(DEMO)/tiny_v2.safetensors --version v2 --channels 32,64,64,64 --heads 2 --init random
	$(BIN)/python -m motion_core inspect $(DEMO)/tiny_v2.safetensors
	$(BIN)/python -m motion_core convert $(DEMO)/tiny_v2.safetensors $(DEMO)/tiny_v2_diffusers --layout diffusers
	$(BIN)/python -m motion_core inspect $(DEMO)/tiny_v2_diffusers --json

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed
	$(BIN)/python bench/load.py
	$(BIN)/python bench/inject.py
	$(BIN)/python bench/train.py

clean:
	rm -rf $(VENV) build
