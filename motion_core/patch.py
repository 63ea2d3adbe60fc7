"""Insert a motion module into a host UNet, and take it out again.

`inject(unet, motion_module)` returns a `MotionUNet` with the original `UNet3DConditionModel` calling convention. The
host's weights are never touched; what `Patch` attaches (forward hooks in diffusers, layers inserted into ComfyUI's
sequential blocks, and for v1 a per-instance forward on the GroupNorms v1 normalises across frames) is removed
again by `eject()` / `Patch.remove()`. No global patching of torch or of any host library.
"""

from __future__ import annotations

import weakref

import torch
from einops import rearrange
from torch import nn

from .config import module_paths
from .control import MotionControl
from .errors import ConfigError
from .frames import check_frames, cross_frame_group_norm, frames_context
from .guards import family_mismatch
from .hosts import host_adapter
from .module import MotionModule

_OWNER: "weakref.WeakKeyDictionary[nn.Module, Patch]" = weakref.WeakKeyDictionary()  # host UNet -> its patch


def check_compatible(unet: nn.Module, motion_module: MotionModule):
    """The host adapter for `unet`, or a ConfigError naming both families when the module does not fit."""
    host = host_adapter(unet)
    config = motion_module.config
    levels = host.levels(unet)
    if levels != len(config.channels):
        model_family = "sdxl" if levels == 3 else "sd15"
        raise ConfigError(f"{family_mismatch(config.family, model_family)} (the UNet has {levels} levels, the module "
                          f"{len(config.channels)})")
    return host


class Patch:
    """Everything one motion module attaches to one host UNet, and its undo."""

    def __init__(self, unet: nn.Module, motion_module: MotionModule, *, scale=1.0, strength=1.0, mask=None,
                 start: float = 0.0, end: float = 1.0, control: MotionControl | None = None):
        """scale, strength, mask, start, end: as `motion_core.control.MotionControl` (or pass `control`)."""
        self.control = control or MotionControl(strength, scale, mask=mask, start=start, end=end)
        if unet in _OWNER:
            raise ConfigError("this UNet already has a motion module injected: eject it first")
        self.unet, self.motion_module = unet, motion_module
        self.host = check_compatible(unet, motion_module)
        self._undo: list = []
        if not self.control.off:  # strength 0: the plain image model, v1's cross-frame norms included
            self._attach()
        _OWNER[unet] = self
        self.active = True

    def _attach(self) -> None:
        points = self.host.points(self.unet, module_paths(self.motion_module.config))
        for path, point in points.items():  # check everything before changing anything
            width = self.motion_module.get_submodule(path).temporal_transformer.proj_in.in_features
            if self.host.channels(point) not in (None, width):
                raise ConfigError(f"{path} has {width} channels but the UNet layer it follows has "
                                  f"{self.host.channels(point)}: the motion module is for another UNet")
        for path, point in points.items():
            self._undo.append(self.host.attach(point, self.motion_module.get_submodule(path), self.control))
        if self.motion_module.config.host_cross_frame_norm:
            for norm in self.host.cross_frame_norms(self.unet):
                norm.forward = cross_frame_group_norm(norm)  # an instance attribute: this model only
                self._undo.append(lambda n=norm: delattr(n, "forward"))

    def remove(self) -> None:
        """Undo everything this patch attached; a second call does nothing."""
        if not self.active:
            return
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        if _OWNER.get(self.unet) is self:
            del _OWNER[self.unet]
        self.active = False


def _per_frame(x: torch.Tensor, b: int, f: int, per_frame_ndim: int, name: str) -> torch.Tensor:
    """A per-clip value (b, ...) repeated for each frame, or per-frame values (b, f, ...), as ((b f), ...)."""
    if x.ndim == per_frame_ndim:
        if tuple(x.shape[:2]) != (b, f):
            raise ConfigError(f"{name} has shape {tuple(x.shape)}: per-frame values must be (clips={b}, frames={f}, "
                              "...)")
        return rearrange(x, "b f ... -> (b f) ...")
    if x.shape[0] != b:
        raise ConfigError(f"{name} has batch {x.shape[0]} but the sample has {b} clips")
    return x.repeat_interleave(f, dim=0)


class MotionUNet(nn.Module):
    """A host UNet with motion modules: `forward(sample (b, c, f, h, w), timestep, encoder_hidden_states (b, n, d),
    added_cond_kwargs=None) -> (b, c, f, h, w)`, the original UNet3DConditionModel's calling convention.

    It holds the host itself, not a copy (an 860M-parameter UNet is not duplicated): `.to()`, `.half()` or
    `.train()` on it act on the host too, and stay after `eject()`, which removes only what inject attached."""

    def __init__(self, unet: nn.Module, motion_module: MotionModule, *, control: MotionControl):
        super().__init__()
        self.unet, self.motion_module = unet, motion_module
        self.patch = Patch(unet, motion_module, control=control)

    def forward(self, sample: torch.Tensor, timestep, encoder_hidden_states: torch.Tensor,
                added_cond_kwargs: dict | None = None, *, window: list[int] | None = None, length: int | None = None,
                **kwargs) -> torch.Tensor:
        """encoder_hidden_states: (b, n, d), the same text for every frame, or (b, f, n, d), per frame.
        window, length: when `sample` holds frames `window` of a `length`-frame clip (context windows), so per-frame
        strength, scale and masks take those frames' values."""
        if not self.patch.active:
            raise ConfigError("this MotionUNet was ejected: inject the motion module again to animate")
        if sample.ndim != 5:
            raise ConfigError(f"sample has shape {tuple(sample.shape)}; expected (batch, channels, frames, h, w)")
        b, _, f, _, _ = sample.shape
        control = self.patch.control
        if not control.off:
            check_frames(f, self.motion_module.config.pe_length)
            control.check_length(f if length is None else length)
        x = rearrange(sample, "b c f h w -> (b f) c h w")
        t = torch.as_tensor(timestep, device=sample.device)
        if t.ndim == 1 and t.shape[0] == b:
            t = t.repeat_interleave(f)  # one timestep per clip, shared by its frames
        context = _per_frame(encoder_hidden_states, b, f, 4, "encoder_hidden_states")
        if added_cond_kwargs is not None:  # SDXL: text_embeds (b, 1280), time_ids (b, 6); or per frame (b, f, ...)
            kwargs["added_cond_kwargs"] = {k: _per_frame(v, b, f, 3, k) for k, v in added_cond_kwargs.items()}
        step = t if t.numel() else None  # read on its device by the control (start / end), never copied to the host
        with frames_context(f, window=window, length=length, timestep=step, motion=control.active(step)):
            out = self.unet(x, t, context, return_dict=False, **kwargs)[0]
        return rearrange(out, "(b f) c h w -> b c f h w", f=f)

    def eject(self) -> nn.Module:
        """Remove everything inject attached and hand back the host UNet, as it was."""
        self.patch.remove()
        return self.unet


def inject(unet: nn.Module, motion_module: MotionModule, *, scale=1.0, strength=1.0, mask=None, start: float = 0.0,
           end: float = 1.0) -> MotionUNet:
    """Insert `motion_module` into a diffusers `UNet2DConditionModel`; `eject()` takes it out again.

    scale: motion amount, multiplies the temporal attention's keys (1 = the original).
    strength: 0 = the plain image model, 1 = the full module; in between, each module adds that fraction of its
    output. Both may vary per frame (a curve "0:1.0, 15:0.2", one value per frame, or a callable of the call).
    mask: (h, w) or (frames, h, w) in [0, 1], where the motion acts; start / end: the fraction of the sampling in
    which it acts (`motion_core.control.MotionControl`). (ComfyUI models go through `Patch` and the node pack.)
    """
    if host_adapter(unet).name != "diffusers":
        raise ConfigError(f"inject() takes a diffusers UNet2DConditionModel; for ComfyUI's {type(unet).__name__} "
                          "use motion_core.patch.Patch (the Inject into Model node does)")
    return MotionUNet(unet, motion_module,
                      control=MotionControl(strength, scale, mask=mask, start=start, end=end))
