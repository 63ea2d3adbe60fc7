"""Without ComfyUI: every node class imports, its schema is well formed, and it explains itself."""

import json
from pathlib import Path

import pytest

from pack_import import load_pack

ROOT = Path(__file__).resolve().parents[1]
TYPES = {"MODEL", "CLIP", "VAE", "CONDITIONING", "LATENT", "IMAGE", "INT", "FLOAT", "STRING", "BOOLEAN",
         "MASK", "MC_MOTION_MODULE", "MC_FREE_INIT", "MC_SPARSECTRL"}
FOREIGN = {"FLOATS", "VHS_BatchManager"}  # other packs' socket types an input may take (core's hooks / KJNodes, VHS)


@pytest.fixture(scope="module")
def pack():
    return load_pack("motion_core_pack_schema")


def test_node_ids_are_prefixed_and_named(pack):
    assert pack.NODE_CLASS_MAPPINGS and set(pack.NODE_CLASS_MAPPINGS) == set(pack.NODE_DISPLAY_NAME_MAPPINGS)
    assert all(node_id.startswith("MC_") for node_id in pack.NODE_CLASS_MAPPINGS)


def test_every_node_schema_is_well_formed(pack):
    for node_id, cls in pack.NODE_CLASS_MAPPINGS.items():
        assert cls.CATEGORY.startswith("motion_core"), node_id
        assert len(cls.DESCRIPTION) > 40, node_id
        assert callable(getattr(cls, cls.FUNCTION)), node_id
        assert isinstance(cls.RETURN_TYPES, tuple) and set(cls.RETURN_TYPES) <= TYPES, node_id
        if cls.RETURN_TYPES:
            assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES), node_id
        spec = cls.INPUT_TYPES()
        assert set(spec) <= {"required", "optional", "hidden"} and spec["required"], node_id
        for section in ("required", "optional"):
            for name, entry in spec.get(section, {}).items():
                kind, options = entry
                assert isinstance(kind, list | tuple) or set(kind.split(",")) <= TYPES | FOREIGN, (node_id, name, kind)
                assert len(options.get("tooltip", "")) > 10, (node_id, name)  # a tooltip on every input
                if kind in ("INT", "FLOAT"):
                    assert options["min"] <= options["default"] <= options["max"], (node_id, name)


def test_every_node_has_a_help_page(pack):
    for node_id in pack.NODE_CLASS_MAPPINGS:
        page = ROOT / "js" / "docs" / f"{node_id}.md"
        assert page.exists() and len(page.read_text()) > 200, node_id


CORE_NODES = {"CheckpointLoaderSimple", "CLIPTextEncode", "VAEDecode", "VAEEncode", "KSampler", "EmptyLatentImage",
              "LoadImage", "SaveImage", "ImageScale", "Canny", "ControlNetLoader",
              "ControlNetApplyAdvanced", "SolidMask", "MaskComposite"}  # ComfyUI core nodes (present in every release since 2023)


def test_every_workflow_uses_existing_nodes_and_its_ui_file_matches(pack):
    api_files = sorted((ROOT / "workflows").glob("*.api.json"))
    assert len(api_files) >= 5
    known = set(pack.NODE_CLASS_MAPPINGS) | CORE_NODES
    for path in api_files:
        api = json.loads(path.read_text())
        ui = json.loads(path.with_name(path.name.replace(".api.json", ".json")).read_text())
        assert {node["class_type"] for node in api.values()} <= known, path.name
        assert {str(n["id"]): n["type"] for n in ui["nodes"]} == {k: v["class_type"] for k, v in api.items()}
        api_links = sorted((int(v[0]), v[1], int(k)) for k, n in api.items() for v in n["inputs"].values()
                           if isinstance(v, list))
        assert sorted((l[1], l[2], l[3]) for l in ui["links"]) == api_links, path.name
