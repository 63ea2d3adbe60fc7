"""A run's files, written atomically (temporary file + rename), so a kill at any moment leaves the last good ones:

  motion_module.safetensors  the motion module alone, original AnimateDiff keys (or motion_lora.safetensors:
                             the MotionLoRA alone, original MotionLoRA keys); any AnimateDiff loader reads it
  resume.pt                  step, trained parameters (fp32), optimizer, fp16 loss-scale and RNG states, config;
                             tensors and plain Python values only, read back with torch.load(weights_only=True):
                             no pickled code runs
  loss.jsonl                 one JSON row per logged step: step, loss, lr, seconds

resume.pt is written last: it is the commit point. The learning rate is a pure function of the step (`lr_at`), so
the step is the whole schedule state.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, CorruptCheckpointError
from ..formats.files import atomic_write
from ..formats.load import save_motion_module
from ..module import MotionModule
from .config import RESUME_INVARIANTS, TrainConfig
from .lora import save_lora


@dataclass(frozen=True)
class RunFiles:
    out: Path  # the run's folder
    lora: bool  # a MotionLoRA run

    @property
    def weights(self) -> Path:
        return self.out / ("motion_lora.safetensors" if self.lora else "motion_module.safetensors")

    @property
    def resume(self) -> Path:
        return self.out / "resume.pt"

    @property
    def log(self) -> Path:
        return self.out / "loss.jsonl"


def rng_states() -> dict:
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
            "python": random.getstate()}


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy(), pos, has_gauss, cached))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))


def trainable_state(module: MotionModule) -> dict[str, torch.Tensor]:
    # no copy on the CPU (saved before training goes on); a GPU tensor is copied to the CPU
    return {name: p.detach().cpu() for name, p in module.named_parameters() if p.requires_grad}


def save_checkpoint(files: RunFiles, module: MotionModule, optimizer, step: int, config: TrainConfig,
                    world_size: int, log_rows: list[dict], scaler=None) -> None:
    """Weights, loss log, then resume.pt (the commit point); every file atomically. scaler: fp16's GradScaler."""
    if files.lora:
        save_lora(module, files.weights)
    else:
        save_motion_module(module, files.weights)
    text = "".join(json.dumps(row) + "\n" for row in log_rows)
    atomic_write(files.log, lambda tmp: Path(tmp).write_text(text))
    state = {"step": step, "config": config.to_json(), "world_size": world_size,
             "trainable": trainable_state(module), "optimizer": optimizer.state_dict(), "rng": rng_states(),
             "scaler": scaler.state_dict() if scaler is not None else {}}
    atomic_write(files.resume, lambda tmp: torch.save(state, tmp))


def read_resume(path: Path) -> dict:
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a damaged pickle fails anywhere inside torch.load, with any type
        raise CorruptCheckpointError(f"{path} cannot be read ({type(e).__name__}: {e}); delete it to start over, "
                                     "or restore it from a backup") from None


def check_resumable(state: dict, config: TrainConfig, world_size: int, path: Path) -> None:
    """The resumed run must draw the same samples and make the same updates as the run it continues."""
    saved = TrainConfig.from_json(state["config"])
    changed = [f"{k}={getattr(saved, k)!r} (now {getattr(config, k)!r})" for k in RESUME_INVARIANTS
               if getattr(saved, k) != getattr(config, k)]
    if config.lr_schedule == "cosine" and saved.steps != config.steps:  # the decay is laid over the whole run
        changed.append(f"steps={saved.steps} with the cosine schedule (now {config.steps})")
    if state["world_size"] != world_size:
        changed.append(f"processes={state['world_size']} (now {world_size})")
    if changed:
        raise ConfigError(f"{path} was written with {', '.join(changed)}: resume with the same settings, or give "
                          "another output folder to start a new run")
    if state["step"] > config.steps:
        raise ConfigError(f"{path} is at step {state['step']}, past steps={config.steps}: raise --steps to go on")


def load_checkpoint(files: RunFiles, module: MotionModule, optimizer, config: TrainConfig,
                    world_size: int, scaler=None) -> tuple[int, list[dict]]:
    """Restore parameters, optimizer, loss-scale and RNG states from resume.pt; returns (step, loss-log rows up
    to it)."""
    state = read_resume(files.resume)
    check_resumable(state, config, world_size, files.resume)
    params = dict(module.named_parameters())
    with torch.no_grad():
        for name, value in state["trainable"].items():
            params[name].copy_(value)
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):  # (a run saved without fp16 starts from a fresh scale)
        scaler.load_state_dict(state["scaler"])
    set_rng_states(state["rng"])
    step = state["step"]
    rows = []
    if files.log.exists():
        rows = [json.loads(line) for line in files.log.read_text().splitlines() if line.strip()]
    return step, [row for row in rows if row["step"] <= step]
