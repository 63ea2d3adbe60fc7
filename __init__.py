"""ComfyUI entry point of the motion_core node pack.

Kept thin: importing the pack imports no diffusers, no cv2 and touches no disk (ComfyUI start-up time matters).
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, TOO_OLD

WEB_DIRECTORY = None if TOO_OLD else "./js"  # a ComfyUI too old for the nodes gets none of the pack

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
