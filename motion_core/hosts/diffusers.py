"""diffusers `UNet2DConditionModel` (SD1.5 and SDXL layouts).

Placement as in the original UNet3DConditionModel: in each down/up block, after `attentions[j]` where the block has
attention, else after `resnets[j]` (before the skip is stored); v2's mid-block module after `mid_block.attentions[0]`;
none at down/up samplers. Each module runs as a forward hook on the layer it follows.
"""

from __future__ import annotations

from torch import nn

from ..control import apply_motion
from ..frames import current_call


class DiffusersHost:
    name = "diffusers"

    @staticmethod
    def accepts(unet) -> bool:
        return all(hasattr(unet, a) for a in ("down_blocks", "mid_block", "up_blocks", "conv_norm_out"))

    @staticmethod
    def levels(unet) -> int:
        return len(unet.down_blocks)

    @staticmethod
    def points(unet, paths: list[str]) -> dict[str, nn.Module]:
        """{original motion-module path: the host layer whose output it transforms}."""
        points = {}
        for path in paths:
            block_path, _, index = path.rpartition(".motion_modules.")
            block = unet.get_submodule(block_path)
            layers = block.attentions if getattr(block, "attentions", None) else block.resnets
            points[path] = layers[int(index)]
        return points

    @staticmethod
    def channels(layer: nn.Module) -> int | None:
        return getattr(layer, "out_channels", None)

    @staticmethod
    def attach(layer: nn.Module, module, control):
        """Run `module` on `layer`'s output during MotionUNet calls, as `control` (a MotionControl) says; returns
        the undo."""
        def after(_, args, output):
            call = current_call()
            if call is None:  # the host called outside a MotionUNet call: plain image model
                return output
            if isinstance(output, tuple):  # blocks called with return_dict=False
                return (apply_motion(module, output[0], call, control),) + output[1:]
            if hasattr(output, "sample"):
                output.sample = apply_motion(module, output.sample, call, control)
                return output
            return apply_motion(module, output, call, control)
        return layer.register_forward_hook(after).remove

    @staticmethod
    def cross_frame_norms(unet) -> list[nn.GroupNorm]:
        """GroupNorms that v1 normalises across frames: every resnet's norm1/norm2, and conv_norm_out."""
        norms = [m for name, m in unet.named_modules()
                 if ".resnets." in name and name.rsplit(".", 1)[-1] in ("norm1", "norm2")]
        return norms + [unet.conv_norm_out]
