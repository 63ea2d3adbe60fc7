"""TrainConfig: every training setting, one field each, handed whole to the loop; and the pure schedules it uses."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

import torch

from ..errors import ConfigError

MIXED_PRECISION = ("auto", "no", "fp16", "bf16")
BETA_SCHEDULES = ("linear", "scaled_linear")
LOSS_WEIGHTINGS = ("epsilon", "v")
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    # data
    frames: int = 16  # frames per training clip (at most the motion module's position-encoding length)
    stride: int = 4  # take every `stride`-th frame; clips shorter than frames*stride are spread evenly instead
    size: int = 256  # clips are resized (short side) and centre-cropped to size x size pixels
    flip: bool = True  # random horizontal flip, the same for every frame of a clip
    caption_dropout: float = 0.1  # probability of training a clip with the empty caption (for classifier-free guidance)
    num_workers: int = 0  # DataLoader worker processes decoding video (0: in the training process)
    # optimisation
    steps: int = 1000  # optimizer steps in the whole run (a resumed run continues up to this)
    batch: int = 1  # clips per process per micro step
    grad_accum: int = 1  # micro steps accumulated per optimizer step (global batch = batch x processes x grad_accum)
    lr: float = 1e-4  # AdamW learning rate after warm-up
    warmup: int = 0  # steps of linear warm-up from 0 to lr
    # after warm-up: "constant" lr, or "cosine" decay from lr towards 0 at `steps` (diffusers' cosine schedule, half
    # a cycle), which ends a run on small updates instead of lr-sized ones
    lr_schedule: str = "constant"
    weight_decay: float = 1e-2  # AdamW decoupled weight decay
    adam_betas: tuple[float, float] = (0.9, 0.999)  # AdamW moment decay rates
    adam_eps: float = 1e-8  # AdamW denominator epsilon
    grad_clip: float = 1.0  # clip the global gradient norm to this (0: no clipping)
    mixed_precision: str = "auto"  # "auto" (bf16 on GPUs that have it, else fp16; none on a CPU), "no", "fp16", "bf16"
    gradient_checkpointing: bool = False  # recompute host and motion-module activations in backward: less memory
    # what trains
    lora_rank: int | None = None  # None: train the motion module; an int: train only a MotionLoRA of this rank
    # diffusion objective (epsilon prediction)
    num_timesteps: int = 1000  # DDPM training timesteps
    beta_start: float = 0.00085  # AnimateDiff's training betas: linspace(beta_start, beta_end, num_timesteps)
    beta_end: float = 0.012
    beta_schedule: str = "linear"  # "linear" (AnimateDiff) or "scaled_linear" (Stable Diffusion's image training)
    # timestep density: t = floor(T * (1 - (1 - u) ** timestep_bias)), u uniform. 1: uniform (AnimateDiff); above 1
    # favours the noisier timesteps, where a clip's layout and colours are decided and frames must agree (2: 55% of
    # the draws in the noisiest 30%); with epsilon prediction their loss is small, so uniform draws learn them slowly
    timestep_bias: float = 1.0
    # the loss: "epsilon" is AnimateDiff's MSE of the predicted noise; "v" weighs each clip's by 1 / alpha_bar_t,
    # which is the MSE of v = sqrt(alpha_bar) noise - sqrt(1 - alpha_bar) x0 (the model still predicts noise). Its
    # weight on the clean clip's error is SNR + 1 instead of SNR (0.0016 at t = 999): at the noisiest steps, where
    # sampling decides the layout and the direction of motion, epsilon's loss barely sees the clip; v's sees it whole
    loss_weighting: str = "epsilon"
    # the share of each clip's noise variance common to all its frames: noise = sqrt(s) shared + sqrt(1 - s) own per
    # frame (PYoCo's "mixed" noise prior, Ge et al. 2023). 0: independent per frame (AnimateDiff). Train with it when
    # sampling starts from shared noise (constant / FreeNoise), so the module learns to move things from a start
    # in which every frame is alike
    noise_sharing: float = 0.0
    # bookkeeping
    seed: int = 0  # every random draw (clip order, crop start, flip, caption drop, timestep, noise) derives from it
    save_every: int = 100  # steps between checkpoints (one is always written at the end)
    log_every: int = 1  # steps between rows of the loss log

    def __post_init__(self):
        for name in ("frames", "stride", "size", "steps", "batch", "grad_accum", "num_timesteps", "save_every",
                     "log_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r} must be an integer of at least 1")
        if self.size % 8:
            raise ConfigError(f"size={self.size} must be a multiple of 8 (the VAE downsamples by 8)")
        if self.lora_rank is not None and self.lora_rank < 1:
            raise ConfigError(f"lora_rank={self.lora_rank} must be at least 1 (or None to train the whole module)")
        if not 0.0 <= self.caption_dropout <= 1.0:
            raise ConfigError(f"caption_dropout={self.caption_dropout} must lie in [0, 1]")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ConfigError(f"mixed_precision={self.mixed_precision!r} is not one of {MIXED_PRECISION}")
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ConfigError(f"beta_schedule={self.beta_schedule!r} is not one of {BETA_SCHEDULES}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"lr_schedule={self.lr_schedule!r} is not one of {LR_SCHEDULES}")
        if self.loss_weighting not in LOSS_WEIGHTINGS:
            raise ConfigError(f"loss_weighting={self.loss_weighting!r} is not one of {LOSS_WEIGHTINGS}")
        if not 0.0 <= self.noise_sharing <= 1.0:
            raise ConfigError(f"noise_sharing={self.noise_sharing} must lie in [0, 1] (0 = independent per frame)")
        if not self.timestep_bias >= 1.0:
            raise ConfigError(f"timestep_bias={self.timestep_bias} must be at least 1 (1 = uniform timesteps)")
        if self.lr <= 0 or self.warmup < 0 or self.grad_clip < 0 or self.num_workers < 0:
            raise ConfigError("lr must be positive; warmup, grad_clip and num_workers must not be negative")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        d = json.loads(text)
        d["adam_betas"] = tuple(d["adam_betas"])
        return cls(**d)


# settings a resumed run must share with the run it continues: they decide which samples, noise and updates come next
RESUME_INVARIANTS = ("frames", "stride", "size", "flip", "caption_dropout", "batch", "grad_accum", "lr", "warmup",
                     "lr_schedule", "weight_decay", "adam_betas", "adam_eps", "grad_clip", "lora_rank",
                     "num_timesteps", "beta_start", "beta_end", "beta_schedule", "timestep_bias", "loss_weighting",
                     "noise_sharing", "seed")


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate of optimizer step `step` (0-based): linear warm-up over `warmup` steps, then constant, or with
    lr_schedule "cosine" lr * (1 + cos(pi * progress)) / 2, progress running from 0 after warm-up to 1 at `steps`
    (diffusers' get_cosine_schedule_with_warmup)."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    if config.lr_schedule == "cosine":
        progress = (step - config.warmup) / max(1, config.steps - config.warmup)
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return config.lr


def alphas_cumprod(config: TrainConfig) -> torch.Tensor:
    """(num_timesteps,) float32 cumulative products of 1 - beta, as diffusers' DDPMScheduler computes them."""
    if config.beta_schedule == "linear":
        betas = torch.linspace(config.beta_start, config.beta_end, config.num_timesteps, dtype=torch.float32)
    else:
        betas = torch.linspace(config.beta_start ** 0.5, config.beta_end ** 0.5, config.num_timesteps,
                               dtype=torch.float32) ** 2
    return torch.cumprod(1.0 - betas, dim=0)
