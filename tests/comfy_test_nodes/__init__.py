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


class RecordAdParams:
    """A model clone whose diffusion model calls append the `ad_params` they see (as IPAdapter_plus and
    Advanced-ControlNet read them) to output/mctest/<label>.jsonl, one line per call."""
    CATEGORY = "motion_core_tests"
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "label": ("STRING", {"default": "ad_params"})}}

    def apply(self, model, label):
        import comfy.patcher_extension
        import folder_paths
        folder = os.path.join(folder_paths.get_output_directory(), "mctest")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{label}.jsonl")

        def record(executor, x, *args, **kwargs):
            options = kwargs.get("transformer_options", args[4] if len(args) > 4 else {})
            params = options.get("ad_params")
            with open(path, "a") as f:
                f.write(json.dumps({"batch": x.shape[0], "ad_params": params}) + "\n")
            return executor(x, *args, **kwargs)
        m = model.clone()
        m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "mctest", record)
        return (m,)


NODE_CLASS_MAPPINGS = {"MCTest_MotionModuleDigest": MotionModuleDigest, "MCTest_RecordAdParams": RecordAdParams}
