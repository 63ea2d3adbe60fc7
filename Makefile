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

# Until trained demo weights ship, the demo builds a tiny random image model and motion module (seconds) and runs
# the whole path on them: create, inspect, convert, then generate a 16-frame clip with prompt travel to GIF and MP4.
demo: $(VENV)/.installed
	@mkdir -p $(DEMO)
	$(BIN)/python -m motion_core create-base $(DEMO)/tiny_base --seed 0
	$(BIN)/python -m motion_core create $(DEMO)/tiny_v3.safetensors --version v3 --channels 32,64,64,64 --heads 2 --init random
	$(BIN)/python -m motion_core inspect $(DEMO)/tiny_v3.safetensors
	$(BIN)/python -m motion_core convert $(DEMO)/tiny_v3.safetensors $(DEMO)/tiny_v3_diffusers --layout diffusers
	$(BIN)/python -m motion_core inspect $(DEMO)/tiny_v3_diffusers --json
	$(BIN)/python -m motion_core generate --model $(DEMO)/tiny_base --motion-module $(DEMO)/tiny_v3_diffusers \
		--prompt "0: a cat sitting" --prompt "12: a cat running" --frames 16 --steps 8 --size 64x64 --seed 42 \
		--out $(DEMO)/demo.gif --out $(DEMO)/demo.mp4

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed
	$(BIN)/python bench/load.py
	$(BIN)/python bench/inject.py
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/train.py

clean:
	rm -rf $(VENV) build
