"""Noise schedules: AnimateDiff's own, as diffusers schedulers.

AnimateDiff trained its SD1.5 modules on betas `linspace(0.00085, 0.012, 1000)` (diffusers "linear", ComfyUI / ldm
"sqrt_linear"), not Stable Diffusion's "scaled_linear"; sampling a motion module on SD's schedule fades colours and
motion. The original inference uses DDIM with steps_offset 1. The SDXL beta module samples with Euler,
"scaled_linear" betas ending at 0.020 and "leading" timestep spacing. Every scheduler here gets its family's betas.
"""

from __future__ import annotations

from .errors import ConfigError

ANIMATEDIFF_BETAS = {
    "sd15": dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="linear",
                 steps_offset=1, timestep_spacing="leading"),
    "sdxl": dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.020, beta_schedule="scaled_linear",
                 steps_offset=1, timestep_spacing="leading"),
}
# The beta schedule each kind of motion module was trained (or distilled) with, in ComfyUI / ldm names:
# version -> (schedule, linear_end, source). "sqrt_linear" is diffusers' "linear" (linear betas 0.00085..end);
# ldm "linear" is diffusers' "scaled_linear"; "lcm" is sqrt_linear betas on LCM's 50 distilled timesteps with
# LCM's boundary conditions (ComfyUI core's ModelSamplingDiscreteDistilled). AnimateDiff-Lightning files are
# v2-shaped and were distilled on v2's schedule, so "v2" covers them.
MODULE_SCHEDULES = {
    "v1": ("sqrt_linear", 0.012, "guoyww/AnimateDiff configs/training: linear betas 0.00085-0.012"),
    "v2": ("sqrt_linear", 0.012, "guoyww/AnimateDiff v2 inference config; AnimateDiff-Lightning's model card: "
                                 "EulerDiscreteScheduler(beta_schedule='linear', timestep_spacing='trailing')"),
    "v3": ("sqrt_linear", 0.012, "guoyww/AnimateDiff configs/inference/inference-v3: linear betas 0.00085-0.012"),
    "sdxl-beta": ("linear", 0.020, "guoyww/AnimateDiff sdxl branch: scaled_linear betas 0.00085-0.020"),
    "hotshot-xl": ("linear", 0.012, "hotshotco/Hotshot-XL: SDXL's own scheduler (scaled_linear 0.00085-0.012)"),
    "animatelcm": ("lcm", 0.012, "G-U-N/AnimateLCM README: LCMScheduler(beta_schedule='linear')"),
}
DEFAULT_SCHEDULER = {"sd15": "ddim", "sdxl": "euler"}
# name -> (diffusers class, extra config)
SCHEDULERS = {
    "ddim": ("DDIMScheduler", dict(clip_sample=False)),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {}),
    "dpmpp_2m_karras": ("DPMSolverMultistepScheduler", dict(use_karras_sigmas=True)),
    "unipc": ("UniPCMultistepScheduler", {}),
    "pndm": ("PNDMScheduler", dict(skip_prk_steps=True)),
    "lcm": ("LCMScheduler", {}),
}


def scheduler_config(family: str, name: str | None = None, **overrides) -> tuple[str, dict]:
    """(diffusers class name, config) of scheduler `name` (default: the family's) on AnimateDiff's betas."""
    if family not in ANIMATEDIFF_BETAS:
        raise ConfigError(f"family {family!r} is not one of {tuple(ANIMATEDIFF_BETAS)}")
    name = name or DEFAULT_SCHEDULER[family]
    if name not in SCHEDULERS:
        raise ConfigError(f"scheduler {name!r} is not one of {', '.join(SCHEDULERS)}")
    cls, extra = SCHEDULERS[name]
    return cls, {**ANIMATEDIFF_BETAS[family], **extra, **overrides}


def make_scheduler(family: str, name: str | None = None, **overrides):
    """A diffusers scheduler instance (imports diffusers)."""
    import diffusers
    cls, config = scheduler_config(family, name, **overrides)
    return getattr(diffusers, cls)(**config)


def module_schedule(version: str) -> tuple[str, float]:
    """(ComfyUI beta schedule, linear_end) a motion module of `version` was trained with (MODULE_SCHEDULES)."""
    if version not in MODULE_SCHEDULES:
        raise ConfigError(f"version {version!r} is not one of {', '.join(MODULE_SCHEDULES)}")
    schedule, end, _ = MODULE_SCHEDULES[version]
    return schedule, end
