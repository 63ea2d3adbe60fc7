"""ComfyUI's `openaimodel.UNetModel` (input_blocks / middle_block / output_blocks of TimestepEmbedSequential).

Duck-typed: nothing from ComfyUI is imported. A `MotionLayer` is inserted into each TimestepEmbedSequential right
after its ResBlock / SpatialTransformer (so before a trailing Upsample, and before the skip is stored); Downsample
blocks get none. ComfyUI calls unknown layers through `forward_timestep_embed_patch` handlers with
`transformer_options`: `forward_timestep_embed_handler` is that handler, and takes the frame count from
`x.shape[0] // len(transformer_options["cond_or_uncond"])`, per call.
"""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from ..control import apply_motion
from ..frames import Call, current_call

_MAIN_LAYERS = ("ResBlock", "SpatialTransformer")


def _names(block) -> list[str]:
    return [type(layer).__name__ for layer in block]


def _after_main(block) -> int:
    """Insertion index: right after the block's last ResBlock / SpatialTransformer."""
    return 1 + max(i for i, n in enumerate(_names(block)) if n in _MAIN_LAYERS)


def frames_per_clip(x, transformer_options: dict | None) -> int | None:
    """ComfyUI batches cond and uncond clips together: frames = batch // len(cond_or_uncond); None if unknown."""
    if transformer_options and transformer_options.get("cond_or_uncond"):
        return x.shape[0] // len(transformer_options["cond_or_uncond"])
    return None


class MotionLayer(nn.Module):
    """One motion module placed inside a ComfyUI TimestepEmbedSequential."""

    def __init__(self, module, control):
        super().__init__()
        self.module, self.control = module, control  # control: a motion_core.control.MotionControl

    def forward(self, x, transformer_options: dict | None = None):
        call = current_call()
        frames = frames_per_clip(x, transformer_options) or (call and call.frames)
        if frames is None:
            raise ConfigError("a motion layer ran without a frame count: register forward_timestep_embed_handler "
                              "for MotionLayer in transformer_options['patches'] (the Inject node does this)")
        if call is None or call.frames != frames:
            call = Call(frames)
        # x is in the UNet's compute dtype; the module is stored in that dtype, or built from layers that cast their
        # weights to it as they run (ComfyUI's operations: manual cast, partial loading)
        return apply_motion(self.module, x, call, self.control)


def forward_timestep_embed_handler(layer, x, emb, context, transformer_options, *args):
    """For `transformer_options["patches"]["forward_timestep_embed_patch"]`: [(MotionLayer, this)]."""
    return layer(x, transformer_options)


class ComfyHost:
    name = "comfyui"

    @staticmethod
    def accepts(unet) -> bool:
        return all(hasattr(unet, a) for a in ("input_blocks", "middle_block", "output_blocks"))

    @staticmethod
    def levels(unet) -> int:
        return 1 + sum("Downsample" in _names(b) for b in unet.input_blocks)

    @staticmethod
    def points(unet, paths: list[str]) -> dict[str, tuple[nn.Sequential, int]]:
        """{original motion-module path: (TimestepEmbedSequential, insertion index)}."""
        found = {}
        level, j = 0, 0
        for block in list(unet.input_blocks)[1:]:  # [0] is conv_in
            names = _names(block)
            if "ResBlock" in names:
                found[f"down_blocks.{level}.motion_modules.{j}"] = (block, _after_main(block))
                j += 1
            elif "Downsample" in names:
                level, j = level + 1, 0
        if "mid_block.motion_modules.0" in paths:
            if unet.middle_block is None:
                raise ConfigError("the motion module has a mid-block module (v2) but this UNet has no middle block")
            found["mid_block.motion_modules.0"] = (unet.middle_block, _after_main(unet.middle_block[:2]))
        level, j = 0, 0
        for block in getattr(unet, "output_blocks", ()):  # a ControlNet (SparseCtrl) has input blocks only
            found[f"up_blocks.{level}.motion_modules.{j}"] = (block, _after_main(block))
            j += 1
            if "Upsample" in _names(block):
                level, j = level + 1, 0
        missing = [p for p in paths if p not in found]
        if missing:
            raise ConfigError(f"the UNet has no place for {missing[:3]}: the motion module is for another layout")
        return {p: found[p] for p in paths}

    @staticmethod
    def channels(point) -> int | None:
        block, index = point
        layer = block[index - 1]
        return getattr(layer, "out_channels", None) or getattr(layer, "in_channels", None)

    @staticmethod
    def attach(point, module, control):
        block, index = point
        layer = MotionLayer(module, control)
        block.insert(index, layer)

        def undo():
            position = next(i for i, m in enumerate(block) if m is layer)
            del block[position]
        return undo

    @staticmethod
    def cross_frame_norms(unet) -> list[nn.GroupNorm]:
        """GroupNorms that v1 normalises across frames: each ResBlock's in/out norm, and the output norm."""
        norms = []
        for m in unet.modules():
            if type(m).__name__ == "ResBlock":
                norms += [m.in_layers[0], m.out_layers[0]]
        return norms + [unet.out[0]]
