"""Test-only ComfyUI nodes (never shipped): tests/comfy_workspace.py links this folder into the test workspace's
custom_nodes as motion_core_test_nodes. Each writes what it saw to output/mctest/<label>.json for the test to read."""

import hashlib
import json
import os


class AnyType(str):
    """Matches every socket type (ComfyUI compares types with !=)."""

    def __ne__(self, other):
        return False


ANY = AnyType("*")


def _write(label: str, found: dict) -> None:
    import folder_paths
    folder = os.path.join(folder_paths.get_output_directory(), "mctest")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{label}.json"), "w") as f:
        json.dump(found, f)


class MotionModuleDigest:
    """A motion module's identity and a hash of its tensors, after whatever `after` / `also_after` come from."""
    CATEGORY = "motion_core_tests"
    RETURN_TYPES = ()
    FUNCTION = "digest"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"motion_module": ("MC_MOTION_MODULE",), "label": ("STRING", {"default": "digest"})},
                "optional": {"after": (ANY,), "also_after": (ANY,)}}

    def digest(self, motion_module, label, after=None, also_after=None):
        sha = hashlib.sha256()
        for key, value in sorted(motion_module.state_dict().items()):
            sha.update(key.encode())
            sha.update(value.detach().float().cpu().contiguous().numpy().tobytes())
        _write(label, {"object_id": id(motion_module), "sha256": sha.hexdigest(),
                       "inference_tensors": sum(t.is_inference() for t in motion_module.state_dict().values())})
        return {}


NODE_CLASS_MAPPINGS = {"MCTest_MotionModuleDigest": MotionModuleDigest}
