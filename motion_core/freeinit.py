"""FreeInit (Wu et al. 2023, arXiv 2312.07537): sample, re-noise the result, keep its low spatio-temporal frequencies,
take the high ones from fresh noise, and sample again.

Video diffusion models are trained on noisy clips whose low frequencies still carry the clip (its layout, colours
and how they change over time), while sampling starts from pure noise, whose low frequencies carry nothing. FreeInit
closes that gap at inference: after each sampling, the clean result is noised back to the first step with the
iteration's starting noise, and its low-frequency part (a 3D FFT over frames, height and width) replaces that of fresh
noise. Pure functions over tensors; `motion_core.pipeline.generate(free_init=N)` runs the iterations, as
ComfyUI's nodes do through `nodes/context.py`.

The filters are those of the FreeInit code and of diffusers' FreeInitMixin (which this matches in float64):
gaussian, butterworth (order `order`), ideal (a ball) and box (a box, from the FreeInit repository), over the
normalised distance d^2 = ((d_s / d_t) (2t / T - 1))^2 + (2h / H - 1)^2 + (2w / W - 1)^2 from the centre of the
shifted spectrum; `spatial` and `temporal` are the stop frequencies d_s and d_t in (0, 1].
"""

from __future__ import annotations

import torch

from .errors import ConfigError

FILTERS = ("gaussian", "butterworth", "ideal", "box")


def check(iterations: int, method: str = "butterworth", order: int = 4, spatial: float = 0.25,
          temporal: float = 0.25) -> None:
    """Refuse bad FreeInit settings with a ConfigError naming the value."""
    if not isinstance(iterations, int) or iterations < 1:
        raise ConfigError(f"free_init={iterations!r} must be an integer of at least 1 (1: no FreeInit)")
    if method not in FILTERS:
        raise ConfigError(f"FreeInit filter {method!r} is not one of {', '.join(FILTERS)}")
    if not isinstance(order, int) or order < 1:
        raise ConfigError(f"FreeInit butterworth order={order!r} must be an integer of at least 1")
    for name, value in (("spatial", spatial), ("temporal", temporal)):
        if not 0.0 < value <= 1.0:
            raise ConfigError(f"FreeInit {name} stop frequency {value} must lie in (0, 1]")


def low_pass_filter(frames: int, height: int, width: int, method: str = "butterworth", order: int = 4,
                    spatial: float = 0.25, temporal: float = 0.25) -> torch.Tensor:
    """(frames, height, width) float32 low-pass mask over a spectrum shifted to its centre (fftshift)."""
    check(1, method, order, spatial, temporal)
    if method == "box":
        mask = torch.zeros(frames, height, width)
        s, t = round(int(height // 2) * spatial), round(frames // 2 * temporal)
        cf, ch, cw = frames // 2, height // 2, width // 2
        mask[cf - t:cf + t, ch - s:ch + s, cw - s:cw + s] = 1.0
        return mask
    axis = lambda n: 2 * torch.arange(n, dtype=torch.float64) / n - 1  # noqa: E731
    d2 = ((spatial / temporal) * axis(frames))[:, None, None] ** 2 + axis(height)[None, :, None] ** 2 + \
        axis(width)[None, None, :] ** 2  # (f, h, w) float64, as the reference's Python floats
    if method == "gaussian":
        mask = torch.exp(-1 / (2 * spatial ** 2) * d2)
    elif method == "butterworth":
        mask = 1 / (1 + (d2 / spatial ** 2) ** order)
    else:  # ideal
        mask = (d2 <= spatial * 2).double()
    return mask.float()


def mix(low: torch.Tensor, high: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The low frequencies of `low` (mask) and the high ones of `high` (1 - mask), over the last three dims
    (frames, height, width); real, in `low`'s dtype."""
    dims = (-3, -2, -1)
    spectrum = lambda x: torch.fft.fftshift(torch.fft.fftn(x, dim=dims), dim=dims)  # noqa: E731
    mixed = spectrum(low) * mask + spectrum(high) * (1 - mask)
    return torch.fft.ifftn(torch.fft.ifftshift(mixed, dim=dims), dim=dims).real.to(low.dtype)


def reinitialise(clean: torch.Tensor, initial: torch.Tensor, fresh: torch.Tensor, alpha_bar: float | torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor:
    """The next iteration's starting noise, in unit-variance form (times the scheduler's init_noise_sigma to start):
    `clean` (b, c, f, h, w), the last sampling's result, noised to the first step with the iteration's unit starting
    noise `initial` (sqrt(alpha_bar) clean + sqrt(1 - alpha_bar) initial, alpha_bar of the last training timestep),
    keeps its low frequencies; the high ones come from `fresh` unit noise. Computed in float32 (as diffusers)."""
    a = torch.as_tensor(alpha_bar, dtype=torch.float64)
    noised = (a.sqrt() * clean.double() + (1 - a).sqrt() * initial.double()).to(clean.dtype).float()
    return mix(noised, fresh.float(), mask.to(clean.device))


def iteration_steps(steps: int, iterations: int, iteration: int, fast: bool) -> int:
    """Sampling steps of `iteration` (0-based): all of them, or with `fast` (coarse to fine, diffusers'
    use_fast_sampling) steps * (iteration + 1) / iterations, at least 1."""
    return max(1, int(steps / iterations * (iteration + 1))) if fast else steps


__all__ = ["FILTERS", "check", "iteration_steps", "low_pass_filter", "mix", "reinitialise"]
