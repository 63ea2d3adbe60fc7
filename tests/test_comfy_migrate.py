"""Converted AnimateDiff-Evolved / ArtVentureX workflows in a real ComfyUI (COMFYUI_PATH; skipped otherwise): every
motion_core node's values valid for the server's /object_info; the converted workflows whose other nodes are core
nodes run end to end (64 px, 2 steps, random full-size models); a converted Gen1 and a converted Gen2
text-to-animation give the same latents as the motion_core graph built by hand (0.0 apart)."""

import copy
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file

from comfy_server import ComfyServer
from migrate_corpus import CORPUS, Build, base
from motion_core.migrate import migrate
from test_comfy_host import COMFYUI, build_workspace, comfy_python

pytestmark = pytest.mark.skipif(not COMFYUI, reason="COMFYUI_PATH is not set to a ComfyUI checkout: the converted "
                                                    "workflows need a real ComfyUI server")
# motion files the corpus names -> the ones the test workspace has (random weights of the same layouts)
FILES = {"mm_sd_v14.ckpt": "mm_sd_v15_v2.ckpt", "mm_sd_v15.ckpt": "mm_sd_v15_v2.ckpt",
         "v2_lora_PanLeft.ckpt": "v2_lora_ZoomIn.ckpt"}
CORE_ONLY = ("gen2_text_to_animation", "legacy_loaders", "artventure")  # once converted


@pytest.fixture(scope="module")
def server():
    base_dir = build_workspace()
    shutil.rmtree(base_dir / "output", ignore_errors=True)
    (base_dir / "output").mkdir()
    s = ComfyServer(Path(COMFYUI), base_dir, comfy_python()).start()
    yield s
    s.stop()


def runnable(api: dict, prefix: str) -> dict:
    """64 px, 2 steps, the workspace's model files, latents saved under `prefix`."""
    wf = copy.deepcopy(api)
    for node in wf.values():
        inputs = node["inputs"]
        for key in ("width", "height"):
            if isinstance(inputs.get(key), int):
                inputs[key] = 64
        if "steps" in inputs:
            inputs["steps"] = 2
        for key in ("model_name", "lora_name"):
            if inputs.get(key) in FILES:
                inputs[key] = FILES[inputs[key]]
        if node["class_type"] in ("SaveLatent", "MC_SaveAnimation"):
            inputs["filename_prefix"] = f"{prefix}/{node['class_type']}"
    return wf


def test_converted_nodes_are_valid_for_the_servers_definitions(server):
    info = server.get("/object_info")
    checked = 0
    for name, build in CORPUS.items():
        for node in migrate(build().api()).data().values():
            kind = node["class_type"]
            if not kind.startswith("MC_") and kind != "EmptyLatentImage":
                continue
            spec = info[kind]["input"]
            inputs = {**spec["required"], **spec.get("optional", {})}
            for key, value in node["inputs"].items():
                assert key in inputs, (name, kind, key)
                if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
                    continue  # a link
                kind_, opts = inputs[key][0], (inputs[key][1] if len(inputs[key]) > 1 else {})
                if isinstance(kind_, list) and key not in ("model_name", "lora_name"):
                    assert value in kind_, (name, kind, key, value)
                elif kind_ in ("INT", "FLOAT"):
                    assert opts.get("min", value) <= value <= opts.get("max", value), (name, kind, key, value)
            missing = [k for k in spec["required"] if k not in node["inputs"]]
            assert not missing, (name, kind, missing)
            checked += 1
    assert checked >= 20


@pytest.mark.parametrize("name", CORE_ONLY)
def test_converted_workflows_run_end_to_end(server, name):
    converted = migrate(CORPUS[name]().api()).data()
    entry = server.run(runnable(converted, f"migrate_{name}"))
    assert entry["status"]["status_str"] == "success", (name, entry["status"], server.log()[-3000:])
    saved = [i for out in entry["outputs"].values() for i in out.get("images", []) + out.get("latents", [])]
    assert saved or list((server.base / "output" / f"migrate_{name}").glob("*")), entry["outputs"]


def latents(server, workflow: dict, prefix: str):
    entry = server.run(runnable(workflow, prefix))
    assert entry["status"]["status_str"] == "success", (prefix, entry["status"], server.log()[-3000:])
    (found,) = sorted((server.base / "output" / prefix).glob("*.latent"))
    return load_file(str(found))["latent_tensor"]


def by_hand(ctx: dict, beta: str) -> dict:
    """The motion_core graph a user would build for the same text-to-animation."""
    b = Build()
    base(b, frames=32)
    b.add(13, "MC_LoadMotionModule", {"model_name": "v3_sd15_mm.ckpt"})
    b.add(6, "MC_InjectMotionModule", {"beta_schedule": beta}, {"model": (1, 0), "motion_module": (13, 0)})
    b.add(5, "MC_ContextOptions", ctx, {"model": (6, 0)})
    b.add(10, "KSampler", {"seed": 42, "steps": 20, "cfg": 7.5, "sampler_name": "euler", "scheduler": "normal",
                           "denoise": 1.0}, {"model": (5, 0), "positive": (2, 0), "negative": (3, 0),
                                             "latent_image": (4, 0)})
    b.add(12, "SaveLatent", {"filename_prefix": "x"}, {"samples": (10, 0)})
    return b.api()


def gen1_with_latents() -> dict:
    b = CORPUS["gen1_text_to_animation"]()
    b.add(12, "SaveLatent", {"filename_prefix": "x"}, {"samples": (10, 0)})
    del b.nodes[11]
    return b.api()


def gen2_with_latents() -> dict:
    b = CORPUS["gen2_text_to_animation"]()
    b.nodes[4]["values"]["batch_size"] = 32
    del b.nodes[11]
    return b.api()


@pytest.mark.parametrize("generation, source, ctx, beta", [
    ("gen1", gen1_with_latents, {"context_length": 16, "context_overlap": 4, "context_schedule": "looped",
                                 "fuse_method": "flat"}, "sqrt_linear (AnimateDiff SD1.5)"),
    ("gen2", gen2_with_latents, {"context_length": 16, "context_overlap": 4, "context_schedule": "uniform",
                                 "fuse_method": "pyramid"}, "auto")])
def test_a_converted_text_to_animation_equals_the_graph_built_by_hand(server, generation, source, ctx, beta):
    converted = migrate(source()).data()
    ours = latents(server, converted, f"migrate_eq_{generation}_converted")
    hand = latents(server, by_hand(ctx, beta), f"migrate_eq_{generation}_hand")
    assert ours.shape == hand.shape == (32, 4, 8, 8)
    assert (ours - hand).abs().max().item() == 0.0
