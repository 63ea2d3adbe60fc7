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
