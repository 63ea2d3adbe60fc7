"""The shipped workflows, defined once here, written in both ComfyUI formats:

    python workflows/build.py --server http://127.0.0.1:8188   # a running ComfyUI with this pack (for /object_info)

writes workflows/<name>.api.json (API format: `comfy run --workflow`, POST /prompt) and workflows/<name>.json (UI
format: drag into ComfyUI). The UI files need each node's widget order, which only a running ComfyUI knows.
Models use the conventional names: v1-5-pruned-emaonly.safetensors, v3_sd15_mm.ckpt, mm_sd_v15_v2.ckpt,
v2_lora_ZoomIn.ckpt; video-to-video reads input/motion_core_input.webp.
"""

from __future__ import annotations

import argparse
import json
import urllib.request
from pathlib import Path

HERE = Path(__file__).parent
NEGATIVE = "blurry, low quality, watermark, text"


def _base(prompt: str, module: str, frames: int) -> dict:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": ["1", 1]}},
        "4": {"class_type": "MC_LoadMotionModule", "inputs": {"model_name": module}},
        "5": {"class_type": "MC_InjectMotionModule", "inputs": {
            "model": ["1", 0], "motion_module": ["4", 0], "scale": 1.0, "strength": 1.0, "beta_schedule": "auto",
            "strength_curve": "", "scale_curve": "", "start_percent": 0.0, "end_percent": 1.0,
            "weight_dtype": "auto"}},
        "6": {"class_type": "MC_SampleFrames", "inputs": {
            "model": ["5", 0], "positive": ["2", 0], "negative": ["3", 0], "frames": frames, "width": 512,
            "height": 512, "seed": 42, "steps": 20, "cfg": 7.5, "sampler_name": "euler", "scheduler": "normal",
            "context_length": 16, "context_overlap": 4, "context_schedule": "static", "closed_loop": False,
            "fuse_method": "pyramid", "noise_type": "independent", "denoise": 1.0}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["1", 2]}},
        "8": {"class_type": "MC_SaveAnimation", "inputs": {"images": ["7", 0], "filename_prefix": "motion_core/anim",
                                                          "format": "webp", "fps": 8.0, "loop": 0, "quality": 90}},
    }


def text_to_animation() -> dict:
    return _base("a red fox running through a snowy forest, cinematic", "v3_sd15_mm.ckpt", 16)


def long_animation() -> dict:
    wf = _base("waves rolling onto a beach at sunset, gentle motion", "mm_sd_v15_v2.ckpt", 64)
    wf["6"]["inputs"].update(context_schedule="uniform", noise_type="freenoise")
    wf["8"]["inputs"].update(format="mp4", filename_prefix="motion_core/long")
    return wf


def prompt_travel() -> dict:
    wf = _base("", "v3_sd15_mm.ckpt", 32)
    wf["2"] = {"class_type": "MC_PromptTravel", "inputs": {
        "clip": ["1", 1], "frames": 32,
        "text": "0: a tree in spring, blossoms\n12: a tree in summer, green leaves\n24: a tree in autumn, red leaves"}}
    wf["8"]["inputs"].update(filename_prefix="motion_core/travel")
    return wf


def motion_lora() -> dict:
    """The stock KSampler path: the frame count (16) fits the module, so no windows are needed."""
    wf = _base("a lighthouse on a cliff, stormy sea", "mm_sd_v15_v2.ckpt", 16)
    wf["9"] = {"class_type": "MC_ApplyMotionLoRA", "inputs": {"motion_module": ["4", 0],
                                                              "lora_name": "v2_lora_ZoomIn.ckpt", "strength": 1.0}}
    wf["5"]["inputs"]["motion_module"] = ["9", 0]
    wf["10"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 16}}
    wf["6"] = {"class_type": "KSampler", "inputs": {
        "model": ["5", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["10", 0], "seed": 42,
        "steps": 20, "cfg": 7.5, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}}
    wf["8"]["inputs"].update(format="gif", filename_prefix="motion_core/zoom")
    return wf


def video_to_video() -> dict:
    wf = _base("a glowing neon square sliding across a dark room", "v3_sd15_mm.ckpt", 16)
    wf["10"] = {"class_type": "LoadImage", "inputs": {"image": "motion_core_input.webp"}}
    wf["11"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["1", 2]}}
    wf["6"]["inputs"].update(latent=["11", 0], denoise=0.6)
    wf["8"]["inputs"].update(filename_prefix="motion_core/v2v")
    return wf


def controlnet_video_to_video() -> dict:
    """48 frames of video through the stock KSampler with Context Options: a per-frame Canny hint from the video
    steers core's Apply ControlNet (Advanced), each window by its own hint frames."""
    wf = _base("a glowing neon square sliding across a dark room", "v3_sd15_mm.ckpt", 48)
    wf["10"] = {"class_type": "LoadImage", "inputs": {"image": "motion_core_input_48.webp"}}
    wf["11"] = {"class_type": "ImageScale", "inputs": {"image": ["10", 0], "upscale_method": "bilinear",
                                                       "width": 512, "height": 512, "crop": "disabled"}}
    wf["12"] = {"class_type": "Canny", "inputs": {"image": ["11", 0], "low_threshold": 0.4, "high_threshold": 0.8}}
    wf["13"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "control_v11p_sd15_canny.pth"}}
    wf["14"] = {"class_type": "ControlNetApplyAdvanced", "inputs": {
        "positive": ["2", 0], "negative": ["3", 0], "control_net": ["13", 0], "image": ["12", 0], "strength": 0.8,
        "start_percent": 0.0, "end_percent": 1.0}}
    wf["15"] = {"class_type": "MC_ContextOptions", "inputs": {
        "model": ["5", 0], "context_length": 16, "context_overlap": 4, "context_schedule": "static",
        "closed_loop": False, "fuse_method": "pyramid", "noise_type": "independent"}}
    wf["16"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["11", 0], "vae": ["1", 2]}}
    wf["6"] = {"class_type": "KSampler", "inputs": {
        "model": ["15", 0], "positive": ["14", 0], "negative": ["14", 1], "latent_image": ["16", 0], "seed": 42,
        "steps": 20, "cfg": 7.5, "sampler_name": "euler", "scheduler": "normal", "denoise": 0.75}}
    wf["8"]["inputs"].update(format="mp4", filename_prefix="motion_core/controlnet_v2v")
    return wf


def masked_motion() -> dict:
    """Motion in one region: a mask (white top half, built from core's mask nodes) on Inject into Model; the flag
    at the top moves, the house below stays as the image model draws it."""
    wf = _base("a red flag waving on a pole above an old stone house, windy day", "v3_sd15_mm.ckpt", 16)
    wf["10"] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 512, "height": 512}}
    wf["11"] = {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 512, "height": 256}}
    wf["12"] = {"class_type": "MaskComposite", "inputs": {"destination": ["10", 0], "source": ["11", 0], "x": 0,
                                                          "y": 256, "operation": "multiply"}}
    wf["5"]["inputs"]["motion_mask"] = ["12", 0]
    wf["8"]["inputs"].update(filename_prefix="motion_core/masked")
    return wf


def free_init() -> dict:
    """FreeInit (2 iterations, butterworth) through Sample Frames: steadier clips at twice the sampling time."""
    wf = _base("a sailing boat on a calm lake at dawn, mist over the water", "v3_sd15_mm.ckpt", 16)
    wf["10"] = {"class_type": "MC_FreeInitOptions", "inputs": {
        "iterations": 2, "filter": "butterworth", "order": 4, "spatial_stop": 0.25, "temporal_stop": 0.25,
        "fast_sampling": False}}
    wf["6"]["inputs"]["free_init"] = ["10", 0]
    wf["8"]["inputs"].update(filename_prefix="motion_core/free_init")
    return wf


def _sparsectrl(prompt: str, file: str, image: str, indices: str, prefix: str) -> dict:
    wf = _base(prompt, "v3_sd15_mm.ckpt", 16)
    wf["10"] = {"class_type": "MC_LoadSparseCtrl", "inputs": {"sparsectrl_name": file, "model": ["5", 0]}}
    wf["11"] = {"class_type": "LoadImage", "inputs": {"image": image}}
    wf["12"] = {"class_type": "MC_ApplySparseCtrl", "inputs": {
        "positive": ["2", 0], "negative": ["3", 0], "sparse_ctrl": ["10", 0], "images": ["11", 0],
        "keyframe_indices": indices, "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0, "vae": ["1", 2]}}
    wf["6"]["inputs"].update(positive=["12", 0], negative=["12", 1])
    wf["8"]["inputs"].update(filename_prefix=prefix)
    return wf


def sparsectrl_image_to_video() -> dict:
    """SparseCtrl RGB: input/motion_core_keyframe.png is frame 0; the motion module animates from it."""
    return _sparsectrl("a red square sliding across a dark room", "v3_sd15_sparsectrl_rgb.ckpt",
                       "motion_core_keyframe.png", "0", "motion_core/sparsectrl_i2v")


def sparsectrl_scribble_keyframes() -> dict:
    """SparseCtrl scribble: the two frames of input/motion_core_scribbles.webp are frames 0 and 15 (an in-between)."""
    return _sparsectrl("a red square sliding across a dark room", "v3_sd15_sparsectrl_scribble.ckpt",
                       "motion_core_scribbles.webp", "0, 15", "motion_core/sparsectrl_scribble")


WORKFLOWS = {"text_to_animation": text_to_animation, "long_animation": long_animation,
             "prompt_travel": prompt_travel, "motion_lora": motion_lora, "video_to_video": video_to_video,
             "controlnet_video_to_video": controlnet_video_to_video, "masked_motion": masked_motion,
             "free_init": free_init, "sparsectrl_image_to_video": sparsectrl_image_to_video,
             "sparsectrl_scribble_keyframes": sparsectrl_scribble_keyframes}


def to_ui(api: dict, info: dict) -> dict:
    """UI (LiteGraph) format: nodes left to right by depth, links, widget values in each node's widget order."""
    def depth(node_id, seen=()):
        links = [v[0] for v in api[node_id]["inputs"].values() if isinstance(v, list)]
        return 0 if not links else 1 + max(depth(n, seen + (node_id,)) for n in links)

    links, ui_nodes, columns = [], [], {}
    outputs = {nid: {} for nid in api}
    for nid, node in api.items():
        for name, value in node["inputs"].items():
            if isinstance(value, list):
                links.append([len(links) + 1, int(value[0]), value[1], int(nid), name])
                outputs[value[0]].setdefault(value[1], []).append(len(links))
    for order, (nid, node) in enumerate(sorted(api.items(), key=lambda kv: (depth(kv[0]), int(kv[0])))):
        spec = info[node["class_type"]]
        inputs, widgets = [], []
        ordered = list(spec["input"].get("required", {}).items()) + list(spec["input"].get("optional", {}).items())
        for name, (kind, *rest) in ordered:
            value = node["inputs"].get(name)
            is_widget = isinstance(kind, list) or kind in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
            if isinstance(value, list):
                link_id = next(l[0] for l in links if l[3] == int(nid) and l[4] == name)
                inputs.append({"name": name, "type": kind if isinstance(kind, str) else "COMBO", "link": link_id})
            elif is_widget:
                widgets.append(value)
                if rest and rest[0].get("control_after_generate"):
                    widgets.append("fixed")
        for link in links:
            if link[3] == int(nid):
                link[4] = next(i for i, x in enumerate(inputs) if x["link"] == link[0])
        out_types = spec["output"]
        ui_outputs = [{"name": spec["output_name"][i], "type": t, "links": outputs[nid].get(i, []), "slot_index": i}
                      for i, t in enumerate(out_types)]
        column = depth(nid)
        row = columns.get(column, 0)
        columns[column] = row + 1
        ui_nodes.append({"id": int(nid), "type": node["class_type"], "pos": [40 + 360 * column, 40 + 300 * row],
                         "size": [320, 260], "flags": {}, "order": order, "mode": 0, "inputs": inputs,
                         "outputs": ui_outputs, "properties": {"Node name for S&R": node["class_type"]},
                         "widgets_values": widgets})
    for link in links:
        from_node = api[str(link[1])]
        link.append(info[from_node["class_type"]]["output"][link[2]])
    return {"last_node_id": max(int(n) for n in api), "last_link_id": len(links), "nodes": ui_nodes,
            "links": links, "groups": [], "config": {}, "extra": {}, "version": 0.4}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", required=True, help="a running ComfyUI with this pack, e.g. http://127.0.0.1:8188")
    args = p.parse_args()
    with urllib.request.urlopen(f"{args.server}/object_info") as r:
        info = json.load(r)
    for name, build in WORKFLOWS.items():
        api = build()
        (HERE / f"{name}.api.json").write_text(json.dumps(api, indent=2) + "\n")
        (HERE / f"{name}.json").write_text(json.dumps(to_ui(api, info), indent=2) + "\n")
        print(f"wrote workflows/{name}.api.json and workflows/{name}.json")


if __name__ == "__main__":
    main()
