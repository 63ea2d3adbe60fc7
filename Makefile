# Two entry points (the README's two commands): `make demo` and `make test`, each over a local venv in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
DEMO := build/demo

.PHONY: demo demo-train test bench clean

# torch first, pinned, only when absent: letting pip resolve a bare `torch` dependency pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

# The embedded demo (motion_core/demo/): the shipped tiny models of a world of shapes. Animates the two personalised
# models with the motion module trained on the base model, beside (a) independent frames and (c) per-model tuning;
# GIF + MP4 per prompt, contact sheets and the metrics table in build/demo. About 2 minutes on a 2-core CPU.
demo: $(VENV)/.installed
	$(BIN)/python -m motion_core inspect motion_core/demo/weights/motion_module.safetensors
	$(BIN)/python -m motion_core demo --out $(DEMO)

# Every demo model again from nothing (deterministic; about an hour on 2 CPU cores): replaces the shipped weights.
demo-train: $(VENV)/.installed
	rm -rf build/demo_train
	$(BIN)/python -m motion_core demo-train --work build/demo_train

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed
	$(BIN)/python bench/load.py
	$(BIN)/python bench/inject.py
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/train.py

clean:
	rm -rf $(VENV) build
