"""ComfyUI nodes over motion_core (classic node API, `MC_` ids, category root `motion_core`).

Node definitions import nothing from ComfyUI; `bridge/` is the one package that does, at run time. A ComfyUI older
than bridge.OLDEST gets one console line and no nodes (none half-registered)."""

from . import bridge, routes
from .context import ContextOptionsNode, FreeInitOptionsNode
from .motion import ApplyMotionLoRA, InjectMotionModule, LoadMotionModule
from .prompts import PromptTravel
from .sample import SampleFrames
from .save import SaveAnimation
from .sparsectrl import ApplySparseCtrl, LoadSparseCtrl
from .train import TrainMotionModule

NODE_CLASS_MAPPINGS = {
    "MC_LoadMotionModule": LoadMotionModule,
    "MC_ApplyMotionLoRA": ApplyMotionLoRA,
    "MC_InjectMotionModule": InjectMotionModule,
    "MC_PromptTravel": PromptTravel,
    "MC_SampleFrames": SampleFrames,
    "MC_ContextOptions": ContextOptionsNode,
    "MC_FreeInitOptions": FreeInitOptionsNode,
    "MC_SaveAnimation": SaveAnimation,
    "MC_LoadSparseCtrl": LoadSparseCtrl,
    "MC_ApplySparseCtrl": ApplySparseCtrl,
    "MC_TrainMotionModule": TrainMotionModule,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "MC_LoadMotionModule": "Load Motion Module",
    "MC_ApplyMotionLoRA": "Apply Motion LoRA",
    "MC_InjectMotionModule": "Inject into Model",
    "MC_PromptTravel": "Prompt Travel",
    "MC_SampleFrames": "Sample Frames",
    "MC_ContextOptions": "Context Options",
    "MC_FreeInitOptions": "FreeInit Options",
    "MC_SaveAnimation": "Save Animation",
    "MC_LoadSparseCtrl": "Load SparseCtrl",
    "MC_ApplySparseCtrl": "Apply SparseCtrl",
    "MC_TrainMotionModule": "Train Motion Module",
}

TOO_OLD = bridge.unsupported_comfy()
if TOO_OLD:
    print(TOO_OLD, flush=True)
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}
else:
    bridge.register_model_folders()
    routes.register()
