"""The web extension's routes, as pure payload functions (no ComfyUI): windows from motion_core.context, warnings
in the same words as the runtime errors, HTTP 400 with a message for every bad parameter."""

import sys

import pytest

from motion_core.context import ContextOptions, windows
from pack_import import load_pack


@pytest.fixture(scope="module")
def routes():
    load_pack("motion_core_pack_routes")
    return sys.modules["motion_core_pack_routes.nodes.routes"]


def test_windows_are_motion_cores(routes):
    status, body = routes.windows_payload({"frames": "48", "length": "16", "overlap": "4"})
    assert status == 200 and body["windows"] == windows(48, ContextOptions(16, 4))
    assert body["windows"][0] == list(range(16)) and body["windows"][-1] == list(range(32, 48))
    status, body = routes.windows_payload({"frames": "40", "length": "16", "overlap": "4", "schedule": "looped",
                                           "closed_loop": "true", "step": "3"})
    assert status == 200 and body["per_step"]
    assert body["windows"] == windows(40, ContextOptions(16, 4, "looped", closed_loop=True), 3)
    assert routes.windows_payload({"frames": "48", "length": "0"})[1]["windows"] == [list(range(48))]
    assert routes.windows_payload({"frames": "12", "length": "16", "overlap": "4"})[1]["windows"] == [list(range(12))]


@pytest.mark.parametrize("query, words", [
    ({"frames": "-1", "length": "16"}, "frames=-1 must be between 1 and 4096"),
    ({"frames": "10000000000", "length": "16"}, "frames=10000000000 must be between 1 and 4096"),
    ({"frames": "48", "length": "16", "overlap": "16"}, "overlap=16 must be less than length=16"),
    ({"frames": "48", "length": "16", "overlap": "20"}, "overlap=20 must be less than length=16"),
    ({"frames": "x", "length": "16"}, "frames='x' is not an integer"),
    ({"length": "16"}, "frames is missing"),
    ({"frames": "48", "length": "999"}, "length=999 must be between 0 and 128"),
    ({"frames": "48", "length": "16", "schedule": "zigzag"}, "schedule='zigzag' is not one of"),
    ({"frames": "48", "length": "16", "closed_loop": "maybe"}, "closed_loop='maybe' must be true or false"),
    ({"frames": "48", "length": "16", "stride": "99"}, "stride=99 must be between 1 and 8")])
def test_bad_window_parameters_are_400_with_a_message(routes, query, words):
    status, body = routes.windows_payload(query)
    assert status == 400 and words in body["error"]


def test_check_warns_in_the_runtime_errors_words(routes):
    from motion_core import FrameCountError
    from motion_core.frames import check_frames
    v2 = {"format": "original", "family": "sd15", "version": "v2", "pe_length": 32}
    modules = {"mm_sd_v15_v2.ckpt": v2, "lora.ckpt": {"format": "motion-lora", "family": "sd15"}}

    def describe(name):
        if name not in modules:
            raise routes.MotionCoreError(f"no such file: {name}")  # the pack's own copy of the error classes
        return modules[name]

    def check(**query):
        return routes.check_payload({k: str(v) for k, v in query.items()}, describe, lambda loader, name: name)

    status, body = check(motion_module="mm_sd_v15_v2.ckpt", checkpoint="sd15", frames=48, context_length=0)
    assert status == 200 and body["module"] == {"family": "sd15", "version": "v2", "pe_length": 32}
    with pytest.raises(FrameCountError) as raised:
        check_frames(48, 32)
    assert body["warnings"] == [str(raised.value)]  # the same sentence the sampler would raise
    assert check(motion_module="mm_sd_v15_v2.ckpt", checkpoint="sd15", frames=48, context_length=16)[1]["warnings"] == []
    assert check(motion_module="mm_sd_v15_v2.ckpt", checkpoint="sd15", frames=32)[1]["warnings"] == []
    family = check(motion_module="mm_sd_v15_v2.ckpt", checkpoint="sdxl", frames=16)[1]["warnings"]
    assert len(family) == 1 and "SD1.5 motion module but the model is SDXL" in family[0]
    assert "cannot read motion module gone.ckpt" in check(motion_module="gone.ckpt")[1]["warnings"][0]
    assert "is a MotionLoRA" in check(motion_module="lora.ckpt")[1]["warnings"][0]
    assert check(frames=-3)[0] == 400 and check(loader="weird")[0] == 400
    assert check()[1] == {"warnings": [], "module": None, "model_family": None}
    # Context Options (no frame count): its window against the module, and windows or clips under 8 frames
    assert check(motion_module="mm_sd_v15_v2.ckpt", context_length=48)[1]["warnings"] == [str(raised.value)]
    short = check(motion_module="mm_sd_v15_v2.ckpt", context_length=4)[1]["warnings"]
    assert len(short) == 1 and short[0].startswith("the window has 4 frames: below 8 frames")
    assert check(frames=48, context_length=6)[1]["warnings"][0].startswith("the window has 6 frames")
    assert check(frames=5, context_length=16)[1]["warnings"][0].startswith("the clip has 5 frames")
    assert check(frames=8, context_length=0)[1]["warnings"] == []


def test_family_from_checkpoint_keys(routes):
    assert routes.family_from_keys(["model.diffusion_model.input_blocks.11.0.in_layers.0.weight"]) == "sd15"
    assert routes.family_from_keys(["model.diffusion_model.label_emb.0.0.weight"]) == "sdxl"
    assert routes.family_from_keys(["input_blocks.11.0.in_layers.0.weight"]) == "sd15"
    assert routes.family_from_keys(["something.else"]) is None


def test_migrate_payload_is_the_converters_and_refuses_bad_bodies(routes):
    from migrate_corpus import CORPUS
    from motion_core.migrate import migrate
    workflow = CORPUS["gen1_text_to_animation"]().ui()
    status, body = routes.migrate_payload({"workflow": workflow})
    assert status == 200 and body["changed"] and body["workflow"] == migrate(workflow).data()
    assert body["lines"] == migrate(workflow).report.lines() and body["report"]["converted"] == 2
    status, body = routes.migrate_payload({"workflow": workflow, "check": True})
    assert status == 200 and "workflow" not in body
    assert routes.migrate_payload({"workflow": {"nodes": []}})[1]["changed"] is False
    for bad in ([1], {"workflow": "x"}, {"workflow": {"x": 1}}):
        status, body = routes.migrate_payload(bad)
        assert status == 400 and body["error"]
