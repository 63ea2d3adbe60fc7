"""Run inside ComfyUI's Python (see test_comfy_train.py): Train Motion Module on the tiny SD1.5-layout ComfyUI model,
under torch.inference_mode() as ComfyUI executes nodes, with stand-in CLIP and VAE objects (the node only calls
`clip.tokenize` / `clip.encode_from_tokens` and `vae.encode`). A progress-bar hook cancels the run at step 2 the
way the UI's stop button does; the node is queued again with resume on. Prints one JSON object of findings."""

import importlib.util
import json
import sys
import tempfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMFY = sys.argv[1]
for missing in ("accelerate", "cv2"):
    if importlib.util.find_spec(missing) is None:
        print(json.dumps({"skipped": f"{missing} is not installed in ComfyUI's environment (the train extra: "
                                     "pip install accelerate opencv-python-headless)"}))
        sys.exit(0)

sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]
from comfy_nodes_check import digest, load_pack, tiny_model  # noqa: E402  (puts ComfyUI on sys.path, --cpu)

import torch  # noqa: E402

import comfy.model_management  # noqa: E402
import comfy.utils  # noqa: E402
import folder_paths  # noqa: E402
from train_helpers import write_clips  # noqa: E402


class StandInClip:
    """tokenize / encode_from_tokens like ComfyUI's CLIP: (1, 77, 32) per text, one seeded vector per word."""

    def __init__(self):
        self.table = torch.randn(65, 32, generator=torch.Generator().manual_seed(0))

    def tokenize(self, text):
        return [zlib.crc32(w.encode()) % 64 for w in text.split()][:77]

    def encode_from_tokens(self, tokens):
        ids = torch.tensor(tokens + [64] * (77 - len(tokens)))
        return self.table[ids][None]


class StandInVAE:
    """encode like ComfyUI's VAE: IMAGE (n, H, W, 3) in [0, 1] -> (n, 4, H/8, W/8)."""

    def __init__(self):
        self.proj = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))

    def encode(self, pixels):
        x = torch.nn.functional.avg_pool2d(pixels.movedim(-1, 1), 8) * 2 - 1
        return torch.einsum("oc,nchw->nohw", self.proj, x)


def main():
    pack = load_pack()
    node = pack.NODE_CLASS_MAPPINGS["MC_TrainMotionModule"]()
    tmp = Path(tempfile.mkdtemp())
    folder_paths.folder_names_and_paths["animatediff_models"] = ([str(tmp / "mm")], {".safetensors"})
    folder_paths.folder_names_and_paths["animatediff_motion_lora"] = ([str(tmp / "lora")], {".safetensors"})
    folder_paths.set_output_directory(str(tmp / "out"))
    data = write_clips(tmp / "clips", corrupt=False)
    results = {}
    seen = []

    def hook(value, total, preview, node_id=None):
        seen.append(value)
        if value == 2 and cancel[0]:
            comfy.model_management.interrupt_current_processing(True)  # what the UI's stop button does
    comfy.utils.set_progress_bar_global_hook(hook)

    def run(name, resume, models=None, **kw):
        args = dict(data_folder=str(data), name=name, frames=8, stride=1, size=64, steps=4, batch=1,
                    learning_rate=1e-3, lora_rank=0, save_every=100, resume=resume, seed=0)
        args.update(kw)
        return node.train(*(models or (base, clip, vae)), **args)[0]

    if pack.nodes.bridge.training_unsupported():  # a release whose UNet adds in place: the node must refuse
        with torch.inference_mode():
            try:
                run("refused", resume=False, models=(tiny_model(), StandInClip(), StandInVAE()))
                results["refused"] = None
            except Exception as e:  # noqa: BLE001 (the type is what is checked)
                results["refused"] = f"{type(e).__name__}: {e}"
        print(json.dumps(results))
        return

    with torch.inference_mode():  # as ComfyUI's executor runs every node
        base, clip, vae = tiny_model(), StandInClip(), StandInVAE()
        before = digest(base.model.diffusion_model)
        cancel = [True]
        try:
            run("cancelled", resume=False)
            results["cancel_raised"] = None
        except comfy.model_management.InterruptProcessingException:
            results["cancel_raised"] = "InterruptProcessingException"
        results["progress_at_cancel"] = list(seen)
        resume_file = tmp / "out" / "motion_core_train" / "cancelled" / "resume.pt"
        results["step_at_cancel"] = torch.load(resume_file, weights_only=True)["step"]
        cancel[0] = False
        resumed = run("cancelled", resume=True)
        straight = run("straight", resume=False)
        lora = run("lora", resume=False, lora_rank=2, steps=2, motion_module=straight)
        results["base_unchanged"] = digest(base.model.diffusion_model) == before
        results["layers_left_in_base"] = sum(type(m).__name__ == "MotionLayer" for m in base.model.diffusion_model.modules())

    from motion_core import describe, load_motion_module
    results["resumed_equals_straight"] = all(torch.equal(v, straight.state_dict()[k])
                                             for k, v in resumed.state_dict().items())
    loaded = load_motion_module(tmp / "mm" / "cancelled.safetensors")
    results["saved_equals_output"] = all(torch.equal(v, resumed.state_dict()[k]) for k, v in loaded.state_dict().items())
    results["trained"] = any(bool(p.any()) for n, p in loaded.named_parameters() if ".proj_out." in n)
    results["lora_file"] = describe(tmp / "lora" / "lora.safetensors")["format"]
    merged = load_motion_module(tmp / "mm" / "straight.safetensors", loras=[(tmp / "lora" / "lora.safetensors", 1.0)])
    results["lora_output_equals_loader_merge"] = all(torch.allclose(v, lora.state_dict()[k], atol=1e-6)
                                                     for k, v in merged.state_dict().items())
    results["lora_changed_module"] = any(not torch.equal(v, straight.state_dict()[k]) for k, v in merged.state_dict().items())
    (injected,) = pack.NODE_CLASS_MAPPINGS["MC_InjectMotionModule"]().inject(base, resumed, 1.0, 1.0, "auto")
    results["output_injects"] = type(injected).__name__
    print(json.dumps(results))


if __name__ == "__main__":
    main()
