"""ComfyUI nodes over motion_core (classic node API, `MC_` ids).

The nodes themselves (Load Motion Module, Inject into Model, Sample Frames, Save Animation, Train Motion Module)
land with their issues; until then the pack registers none, so ComfyUI loads it as an empty pack.
"""

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}
