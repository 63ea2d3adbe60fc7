"""motion_core.migrate and `python -m motion_core migrate`: AnimateDiff-Evolved and ArtVentureX workflows (the corpus
in migrate_corpus.py, UI and API format) converted to motion_core's nodes, with every source node either converted
or reported, links consistent, every other node untouched, widgets valid for the pack's input definitions, and a
second conversion changing nothing."""

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from migrate_corpus import CORPUS, Build, base
from motion_core.migrate import NotAWorkflowError, is_source, migrate, read_workflow
from motion_core.migrate.specs import TARGETS
from pack_import import load_pack

ROOT = Path(__file__).resolve().parents[1]
FORMS = ("ui", "api")


def nodes_of(data: dict, form: str) -> dict:
    return {n["id"]: n for n in data["nodes"]} if form == "ui" else data


def type_of(node: dict, form: str) -> str:
    return node["type"] if form == "ui" else node["class_type"]


def link_fields(link) -> tuple:
    return tuple(link[:6]) if isinstance(link, list) else (link["id"], link["origin_id"], link["origin_slot"],
                                                           link["target_id"], link["target_slot"], link["type"])


def check_links(data: dict, dangling=()) -> None:
    """Every link joins an output to the input that names it, and both sides list it; `dangling` stay as read."""
    nodes = {n["id"]: n for n in data["nodes"]}
    for link in data["links"]:
        lid, src, slot, dst, dslot, _ = link_fields(link)
        if lid in dangling:
            continue
        assert src in nodes and dst in nodes, link
        assert nodes[dst]["inputs"][dslot]["link"] == lid, (link, nodes[dst]["inputs"])
        assert lid in (nodes[src]["outputs"][slot]["links"] or []), (link, nodes[src]["outputs"])
    ids = {link_fields(link)[0] for link in data["links"]}
    for node in nodes.values():
        for inp in node.get("inputs") or []:
            assert inp.get("link") is None or inp["link"] in ids, (node["id"], inp)


@pytest.fixture(scope="module")
def pack():
    return load_pack()


def check_widgets(pack, data: dict, form: str) -> None:
    """Each motion_core node's values fit its inputs as the pack defines them (types, ranges, options)."""
    for node in nodes_of(data, form).values():
        kind = type_of(node, form)
        if not kind.startswith("MC_"):
            continue
        spec = TARGETS[kind]
        if form == "ui":
            assert len(node["widgets_values"]) == len(spec.widget_names()), node
            values = dict(zip(spec.widget_names(), node["widgets_values"]))
        else:
            values = {k: v for k, v in node["inputs"].items() if not isinstance(v, list)}
        defined = pack.NODE_CLASS_MAPPINGS[kind].INPUT_TYPES()
        inputs = {**defined["required"], **defined.get("optional", {})}
        for name, value in values.items():
            if name.endswith(":control"):
                assert value in ("fixed", "increment", "decrement", "randomize"), (kind, name, value)
                continue
            kind_, opts = inputs[name][0], (inputs[name][1] if len(inputs[name]) > 1 else {})
            if isinstance(kind_, list):
                assert not kind_ or value in kind_, (kind, name, value)  # (file lists are empty outside ComfyUI)
            elif kind_ in ("INT", "FLOAT"):
                assert isinstance(value, (int, float)) and not isinstance(value, bool), (kind, name, value)
                assert opts.get("min", value) <= value <= opts.get("max", value), (kind, name, value)
            elif kind_ == "BOOLEAN":
                assert isinstance(value, bool), (kind, name, value)
            elif kind_ == "STRING":
                assert isinstance(value, str), (kind, name, value)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_the_corpus_converts_with_every_source_node_converted_or_reported(pack, name, form):
    build = CORPUS[name]()
    source = build.ui() if form == "ui" else build.api()
    before = copy.deepcopy(source)
    result = migrate(source)
    assert source == before  # the input is not changed
    out = result.data()
    left = {n.node for n in result.report.of("left")}
    for node_id, node in nodes_of(out, form).items():
        if is_source(type_of(node, form)):
            assert str(node_id) in left, (name, node_id, type_of(node, form), result.report.lines())
    # every other node is as it was, but for the links into it
    src_nodes = nodes_of(before, form)
    for node_id, node in nodes_of(out, form).items():
        kind = type_of(node, form)
        if node_id in src_nodes and not is_source(type_of(src_nodes[node_id], form)) and not kind.startswith("MC_"):
            strip = (lambda n: {k: v for k, v in n.items() if k not in ("inputs", "outputs")}) if form == "ui" else \
                (lambda n: {**n, "inputs": {k: v for k, v in n["inputs"].items() if not isinstance(v, list)}})
            assert strip(node) == strip(src_nodes[node_id]), (name, node_id)
    if form == "ui":
        dangling = {link_fields(link)[0] for link in build.extra_links}
        check_links(out, dangling)
        assert [l for l in out["links"] if link_fields(l)[0] in dangling] == build.extra_links  # kept, as they were
        assert out["groups"] == before["groups"]
    check_widgets(pack, out, form)
    again = migrate(out)  # converting a converted workflow changes nothing (what was left is reported again)
    assert again.data() == out and {n.kind for n in again.report.notes} <= {"left"}


def converted(name: str, form: str = "ui"):
    result = migrate(CORPUS[name]().ui() if form == "ui" else CORPUS[name]().api())
    return result, nodes_of(result.data(), form)


def values(node: dict) -> dict:
    spec = TARGETS[node["type"]]
    return dict(zip(spec.widget_names(), node["widgets_values"]))


def chain(nodes: dict, out: dict, start, name: str = "model") -> list[str]:
    """Node types up a chain of inputs called `name` (or motion_module) from node `start`."""
    links = {link_fields(l)[0]: link_fields(l) for l in out["links"]}
    kinds, node = [], nodes[start]
    while node is not None:
        kinds.append(node["type"])
        feed = next((i for i in node.get("inputs") or [] if i["name"] in (name, "motion_module") and i["link"]), None)
        node = nodes[links[feed["link"]][1]] if feed else None
    return kinds


def test_gen1_loader_becomes_load_inject_and_context_options():
    result, nodes = converted("gen1_text_to_animation")
    out = result.data()
    assert chain(nodes, out, 10) == ["KSampler", "MC_ContextOptions", "MC_InjectMotionModule", "CheckpointLoaderSimple"]
    inject = nodes[6]
    assert inject["type"] == "MC_InjectMotionModule" and inject["title"] == "AnimateDiff" and inject["color"] == "#232"
    assert values(inject)["beta_schedule"] == "sqrt_linear (AnimateDiff SD1.5)"
    assert values(nodes[5]) == {"context_length": 16, "context_overlap": 4, "context_schedule": "looped",
                                "closed_loop": False, "fuse_method": "flat", "noise_type": "independent"}
    assert nodes[5]["pos"] == next(n for n in CORPUS["gen1_text_to_animation"]().ui()["nodes"] if n["id"] == 5)["pos"]
    load = [n for n in nodes.values() if n["type"] == "MC_LoadMotionModule"]
    assert len(load) == 1 and values(load[0])["model_name"] == "v3_sd15_mm.ckpt"
    assert nodes[12]["type"] == "VHS_VideoCombine" and isinstance(nodes[12]["widgets_values"], dict)


def test_side_nodes_fold_into_the_chain():
    result, nodes = converted("gen1_loras_settings_free_init")
    out = result.data()
    assert chain(nodes, out, 10) == ["KSampler", "MC_ContextOptions", "MC_InjectMotionModule",
                                     "IPAdapterUnifiedLoader", "CheckpointLoaderSimple"]
    assert chain(nodes, out, 6, "motion_module")[1:] == ["MC_ApplyMotionLoRA", "MC_ApplyMotionLoRA",
                                                         "MC_LoadMotionModule"]
    loras = sorted((values(nodes[i])["lora_name"], values(nodes[i])["strength"]) for i in (7, 8))
    assert loras == [("v2_lora_PanLeft.ckpt", 0.5), ("v2_lora_ZoomIn.ckpt", 0.8)]
    ctx = values(nodes[5])
    assert ctx["noise_type"] == "freenoise" and ctx["context_schedule"] == "static"
    assert values(nodes[13]) == {"iterations": 2, "filter": "butterworth", "order": 4, "spatial_stop": 0.25,
                                 "temporal_stop": 0.25, "fast_sampling": False}
    assert next(i for i in nodes[5]["inputs"] if i["name"] == "free_init")["link"] is not None
    inject = values(nodes[6])
    assert inject["strength"] == 0.9 and next(i for i in nodes[6]["inputs"] if i["name"] == "motion_mask")["link"]
    assert 14 not in nodes and 16 not in nodes  # merged: sample settings, multival
    assert {n.node for n in result.report.of("merged")} == {"14", "16"}


def test_gen2_nodes_become_one_inject_with_their_settings():
    result, nodes = converted("gen2_advanced")
    inject = values(nodes[6])
    assert (inject["scale"], inject["start_percent"], inject["end_percent"]) == (1.2, 0.1, 0.9)
    assert inject["beta_schedule"] == "lcm (AnimateLCM)"
    approx = " ".join(n.text for n in result.report.of("approximate"))
    assert "beta_schedule 'lcm'" in approx and "ad_keyframes" in approx and "custom CFG" in approx
    left = {n.type for n in result.report.of("left")}
    assert {"ADE_AdjustPEFullStretch", "ADE_AnimateDiffSettings", "ADE_AnimateDiffKeyframe",
            "ADE_CustomCFGSimple"} <= left
    assert nodes[12]["type"] == "MC_SaveAnimation" and values(nodes[12])["format"] == "gif"
    assert nodes[32]["type"] == "ACN_AdvancedControlNetApply" and nodes[30]["type"] == "BatchPromptSchedule"


def test_legacy_loaders_unload_and_old_value_orders():
    result, nodes = converted("legacy_loaders")
    out = result.data()
    links = {link_fields(l)[0]: link_fields(l) for l in out["links"]}
    latent_in = next(i for i in nodes[10]["inputs"] if i["name"] == "latent_image")["link"]
    assert links[latent_in][1] == 4  # the V1 loader's LATENT output was its latents input passed through
    assert chain(nodes, out, 14) == ["KSampler", "CheckpointLoaderSimple"]  # after Unload: the plain model
    assert 13 not in nodes
    assert values(nodes[12]) == {"filename_prefix": "old", "format": "gif", "fps": 8.0, "loop": 0, "quality": 90}
    assert values(nodes[5]) == {"width": 512, "height": 512, "batch_size": 48}
    assert nodes[5]["type"] == "EmptyLatentImage"
    advanced = [n for n in nodes.values() if n["type"] == "MC_ContextOptions"]
    assert len(advanced) == 1 and values(advanced[0])["context_schedule"] == "looped"
    assert values(advanced[0])["closed_loop"] is True


def test_artventure_sampler_becomes_inject_and_sample_frames():
    result, nodes = converted("artventure")
    frames = nodes[10]
    assert frames["type"] == "MC_SampleFrames"
    v = values(frames)
    assert (v["frames"], v["seed"], v["seed:control"], v["context_length"], v["context_schedule"],
            v["fuse_method"]) == (32, 11, "randomize", 16, "looped", "flat")
    out = result.data()
    assert chain(nodes, out, 10) == ["MC_SampleFrames", "MC_InjectMotionModule", "CheckpointLoaderSimple"]
    inject = next(n for n in nodes.values() if n["type"] == "MC_InjectMotionModule")
    assert chain(nodes, out, inject["id"], "motion_module")[1:] == ["MC_ApplyMotionLoRA", "MC_LoadMotionModule"]
    assert values(nodes[12])["format"] == "mp4" and values(nodes[12])["fps"] == 12.0
    assert 7 not in nodes and "frame_number 32" in " ".join(n.text for n in result.report.of("approximate"))


def test_unsupported_nodes_stay_and_are_reported_with_what_is_closest():
    result, nodes = converted("mixed_and_unsupported")
    left = {n.type: n.text for n in result.report.of("left")}
    assert "CameraCtrl" in left["ADE_LoadAnimateDiffModelWithCameraCtrl"]
    assert "SparseCtrl" in left["ADE_InjectPIAIntoAnimateDiffModel"]
    assert "context extras" in left["ADE_ContextExtras_ContextRef"]
    assert "noise layers" in left["ADE_NoiseLayerAdd"]
    assert nodes[6]["type"] == "MC_InjectMotionModule" and nodes[15]["type"] == "MC_SampleFrames"
    assert [l for l in result.data()["links"] if link_fields(l)[0] == 99] == [[99, 77, 0, 10, 9, "MODEL"]]


def test_api_and_ui_conversions_agree():
    for name in CORPUS:
        ui, api = migrate(CORPUS[name]().ui()).data(), migrate(CORPUS[name]().api()).data()
        ui_types = sorted(n["type"] for n in ui["nodes"] if n["type"] != "Reroute")  # (the editor's alone)
        api_types = sorted(n["class_type"] for n in api.values())
        assert ui_types == api_types, name
        for n in ui["nodes"]:
            if n["type"].startswith("MC_") and str(n["id"]) in api:
                spec = TARGETS[n["type"]]
                widget_values = {k: v for k, v in zip(spec.widget_names(), n["widgets_values"])
                                 if not k.endswith(":control")}
                api_values = {k: v for k, v in api[str(n["id"])]["inputs"].items() if k in widget_values}
                linked = {k for k, v in api[str(n["id"])]["inputs"].items() if isinstance(v, list)}
                assert {k: v for k, v in widget_values.items() if k not in linked} == api_values, (name, n["id"])


def subgraph_workflow() -> dict:
    """A root graph whose subgraph holds the Gen1 loader and its context options: model in (-10), MODEL out
    (-20), links as version-1 objects; its instance feeds the KSampler."""
    inner = CORPUS["gen1_text_to_animation"]().ui()
    keep = {5, 6}
    nodes = [n for n in inner["nodes"] if n["id"] in keep]
    links = [{"id": 1, "origin_id": -10, "origin_slot": 0, "target_id": 6, "target_slot": 0, "type": "MODEL"},
             {"id": 2, "origin_id": 5, "origin_slot": 0, "target_id": 6, "target_slot": 1, "type": "CONTEXT_OPTIONS"},
             {"id": 3, "origin_id": 6, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "MODEL"}]
    nodes[1]["inputs"] = [{"name": "model", "type": "MODEL", "link": 1},
                          {"name": "context_options", "type": "CONTEXT_OPTIONS", "link": 2}]
    nodes[1]["outputs"] = [{"name": "MODEL", "type": "MODEL", "links": [3]}]
    nodes[0]["outputs"] = [{"name": "CONTEXT_OPTS", "type": "CONTEXT_OPTIONS", "links": [2]}]
    uuid = "a1b2c3d4-0000-4000-8000-000000000001"
    definition = {"id": uuid, "version": 1, "state": {"lastGroupId": 0, "lastNodeId": 6, "lastLinkId": 3,
                                                      "lastRerouteId": 0},
                  "revision": 0, "config": {}, "name": "AnimateDiff",
                  "inputNode": {"id": -10, "bounding": [0, 0, 1, 1]},
                  "outputNode": {"id": -20, "bounding": [0, 0, 1, 1]},
                  "inputs": [{"id": "i0", "name": "model", "type": "MODEL", "linkIds": [1]}],
                  "outputs": [{"id": "o0", "name": "MODEL", "type": "MODEL", "linkIds": [3]}],
                  "widgets": [], "nodes": nodes, "groups": [], "links": links, "extra": {}}
    b = Build()
    base(b)
    root = b.ui()
    root["nodes"].append({"id": 20, "type": uuid, "pos": [0, 0], "size": [200, 60], "flags": {}, "order": 9, "mode": 0,
                          "inputs": [{"name": "model", "type": "MODEL", "link": 50}],
                          "outputs": [{"name": "MODEL", "type": "MODEL", "links": None}], "properties": {},
                          "widgets_values": []})
    root["links"].append([50, 1, 0, 20, 0, "MODEL"])
    next(n for n in root["nodes"] if n["id"] == 1)["outputs"][0]["links"] = [50]
    root["definitions"] = {"subgraphs": [definition]}
    return root


def test_subgraphs_are_converted_inside():
    result = migrate(subgraph_workflow())
    definition = result.data()["definitions"]["subgraphs"][0]
    kinds = sorted(n["type"] for n in definition["nodes"])
    assert kinds == ["MC_ContextOptions", "MC_InjectMotionModule", "MC_LoadMotionModule"]
    links = [link_fields(l) for l in definition["links"]]
    assert all(isinstance(l, dict) for l in definition["links"])
    nodes = {n["id"]: n for n in definition["nodes"]}
    from_input = next(l for l in links if l[1] == -10)
    to_output = next(l for l in links if l[3] == -20)
    assert nodes[from_input[3]]["type"] == "MC_InjectMotionModule"
    assert nodes[to_output[1]]["type"] == "MC_ContextOptions"
    assert {n.node for n in result.report.notes} >= {"AnimateDiff/6", "AnimateDiff/5"}
    assert definition["state"]["lastNodeId"] >= max(nodes)


def test_wrappers_and_embedded_workflows_are_read(tmp_path):
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo
    build = CORPUS["gen2_text_to_animation"]()
    both = {"workflow": build.ui(), "output": build.api()}
    result = migrate(both)
    out = result.data()
    assert set(out) == {"workflow", "output"} and any(n["type"] == "MC_InjectMotionModule" for n in
                                                      out["workflow"]["nodes"])
    assert any(n["class_type"] == "MC_InjectMotionModule" for n in out["output"].values())
    info = PngInfo()
    info.add_text("prompt", json.dumps(build.api()))
    info.add_text("workflow", json.dumps(build.ui()))
    Image.new("RGB", (8, 8)).save(tmp_path / "frame.png", pnginfo=info)
    read = read_workflow(tmp_path / "frame.png")
    assert read.ui == build.ui() and read.api == build.api()
    from motion_core.media import write_animation
    import numpy as np
    frames = np.zeros((2, 8, 8, 3), dtype=np.float32)
    for suffix in ("webp", "gif", "mp4"):
        path = tmp_path / f"anim.{suffix}"
        write_animation(frames, path, metadata={"workflow": build.ui(), "prompt": build.api()})
        assert read_workflow(path).ui == build.ui(), suffix


@pytest.mark.parametrize("content, message", [
    (b'{"a": 1}', "is JSON but not a ComfyUI workflow"), (b"\x00\x01garbage", "neither JSON nor"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "holds no ComfyUI workflow")])
def test_what_is_not_a_workflow_is_refused_with_the_reason(tmp_path, content, message):
    path = tmp_path / "input.bin"
    path.write_bytes(content)
    with pytest.raises(NotAWorkflowError, match=message):
        read_workflow(path)


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "motion_core", "migrate", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def test_cli_writes_the_conversion_and_prints_the_report(tmp_path):
    src = tmp_path / "old.json"
    src.write_text(json.dumps(CORPUS["mixed_and_unsupported"]().ui()))
    p = cli(src, "--check")
    assert p.returncode == 0 and "left as they were" in p.stdout and "CameraCtrl" in p.stdout
    assert not (tmp_path / "old.motion_core.json").exists()
    p = cli(src)
    assert p.returncode == 0 and p.stdout.strip().endswith(f"wrote {tmp_path / 'old.motion_core.json'}")
    written = json.loads((tmp_path / "old.motion_core.json").read_text())
    assert written == migrate(json.loads(src.read_text())).data()
    p = cli(src, "-o", tmp_path / "new.json", "--json")
    report = json.loads(p.stdout)
    assert p.returncode == 0 and report["left"] >= 4 and report["converted"] >= 3
    assert (tmp_path / "new.json").exists()
    (tmp_path / "x.json").write_text("[1, 2]")
    p = cli(tmp_path / "x.json")
    assert p.returncode == 2 and "not a ComfyUI workflow" in p.stderr
    p = cli(tmp_path / "missing.json")
    assert p.returncode == 2 and "does not exist" in p.stderr
