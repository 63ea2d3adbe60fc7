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

# The demo (demo/, a client of motion_core, not installed with it): its shipped tiny models animate two personalised
# models with the motion module trained on the base model, beside (a) independent frames, (c) per-model tuning and
# (d) a MotionLoRA; GIF + MP4 per prompt, contact sheets and the metrics table in build/demo.
demo: $(VENV)/.installed
	$(BIN)/python -m motion_core inspect demo/weights/motion_module.safetensors
	$(BIN)/python -m demo run --out $(DEMO)

# The demo models, into build/demo_train, then the shipped weights in demo/weights. Stages whose settings the shipped
# weights were trained with are taken from them (ADOPT); `make demo-train ADOPT=` trains every model from nothing
# (deterministic; about 90 minutes on 2 CPU cores). Resumable: run it again after an interruption and it continues.
ADOPT ?= demo/weights
demo-train: $(VENV)/.installed
	$(BIN)/python -m demo train --work build/demo_train $(if $(ADOPT),--adopt $(ADOPT))

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed
	$(BIN)/python bench/load.py
	$(BIN)/python bench/inject.py
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/train.py

clean:
	rm -rf $(VENV) build
