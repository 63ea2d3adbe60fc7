"""MotionLoRA: original, diffusers and PEFT naming load and merge as `W += alpha * up @ down`, several at once."""

import re

import pytest
import torch
from safetensors.torch import save_file

from conftest import assert_same_tensors, random_module
from motion_core import (LoRAMismatchError, NotAMotionModuleError, UnknownLayoutError, describe, load_motion_lora,
                         load_motion_module, merge_motion_lora)
from motion_core.formats.layouts import original_key_to_diffusers


def make_lora(module, rank=4, seed=0) -> dict:
    """Original-naming MotionLoRA for every attention projection of `module`."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, w in module.state_dict().items():
        m = re.match(r"(.+attention_blocks\.\d+)\.(to_q|to_k|to_v|to_out\.0)\.weight$", key)
        if m:
            proj = m[2].replace(".0", "")
            sd[f"{m[1]}.processor.{proj}_lora.down.weight"] = torch.randn(rank, w.shape[1], generator=g) * 0.1
            sd[f"{m[1]}.processor.{proj}_lora.up.weight"] = torch.randn(w.shape[0], rank, generator=g) * 0.1
    return sd


def expected_merge(module, loras):
    out = {k: v.clone() for k, v in module.state_dict().items()}
    for sd, alpha in loras:
        for key, down in sd.items():
            if ".down." not in key:
                continue
            up = sd[key.replace(".down.", ".up.")]
            target = key.replace("processor.", "").replace("_lora.down", "").replace("to_out.", "to_out.0.")
            out[target] = out[target] + alpha * (up @ down)
    return out


def to_diffusers_naming(sd):
    return {"unet." + original_key_to_diffusers(k): v for k, v in sd.items()}


def to_peft_naming(sd):
    out = {}
    for k, v in to_diffusers_naming(sd).items():
        k = k.replace("processor.", "").replace("to_out_lora.", "to_out.0.lora_").replace("_lora.", ".lora_")
        out[k.replace("lora_down", "lora_A").replace("lora_up", "lora_B")] = v
    return out


@pytest.mark.parametrize("naming", [dict, to_diffusers_naming, to_peft_naming])
def test_every_naming_merges_like_the_original(naming):
    base = random_module("v2")
    lora = make_lora(base)
    mm = load_motion_module(base.state_dict(), heads=2, loras=[(naming(lora), 0.7)])
    want = expected_merge(base, [(lora, 0.7)])
    for k, v in mm.state_dict().items():
        assert torch.allclose(v, want[k], atol=1e-6), k
    assert sum(not torch.equal(v, base.state_dict()[k]) for k, v in mm.state_dict().items()) == 21 * 2 * 4


def test_several_loras_at_once_and_input_untouched(tmp_path):
    base = random_module("v2")
    before = {k: v.clone() for k, v in base.state_dict().items()}
    a, b = make_lora(base, seed=1), make_lora(base, rank=8, seed=2)
    save_file(a, tmp_path / "zoom_in.safetensors")
    torch.save(b, tmp_path / "pan_left.ckpt")
    mm = load_motion_module(base.state_dict(), heads=2,
                            loras=[(tmp_path / "zoom_in.safetensors", 1.0), (tmp_path / "pan_left.ckpt", -0.5)])
    want = expected_merge(base, [(a, 1.0), (b, -0.5)])
    for k, v in mm.state_dict().items():
        assert torch.allclose(v, want[k], atol=1e-6), k
    assert len(mm.info.loras) == 2
    assert_same_tensors(base.state_dict(), before)  # the caller's tensors were not modified


def test_zero_strength_is_the_identity():
    base = random_module("v3")
    mm = load_motion_module(base.state_dict(), heads=2, loras=[(make_lora(base), 0.0)])
    assert_same_tensors(mm.state_dict(), base.state_dict())


def test_half_precision_module_merges_in_fp32_and_keeps_its_dtype():
    base = random_module("v3")
    half = {k: v.half() for k, v in base.state_dict().items()}
    lora = make_lora(base)
    mm = load_motion_module(half, heads=2, loras=[lora])
    assert all(p.dtype == torch.float16 for p in mm.parameters())
    base_from_half = load_motion_module({k: v.float() for k, v in half.items()}, heads=2)
    want = expected_merge(base_from_half, [(lora, 1.0)])
    changed = 0
    for k, v in mm.state_dict().items():  # the merge in fp32 from the fp16 weights, rounded once to fp16
        assert torch.equal(v, want[k].half()), k
        changed += not torch.equal(v, half[k])
    assert changed == 20 * 2 * 4  # v3: 20 modules x 2 attention blocks x 4 projections


def test_lora_for_another_module_is_refused():
    v3_lora = make_lora(random_module("v3"))
    wider = random_module("v3", channels=(64, 64, 64, 64))
    with pytest.raises(LoRAMismatchError, match="another module size"):
        merge_motion_lora(wider, load_motion_lora(v3_lora))
    v2_lora = make_lora(random_module("v2"))
    with pytest.raises(LoRAMismatchError, match="does not have"):
        merge_motion_lora(random_module("v3"), load_motion_lora(v2_lora))


def test_half_a_pair_is_refused():
    lora = make_lora(random_module("v3"))
    lora.pop(next(k for k in lora if ".up." in k))
    with pytest.raises(LoRAMismatchError, match="only its down half"):
        load_motion_lora(lora)


def test_a_motion_module_is_not_a_lora():
    with pytest.raises(NotAMotionModuleError, match="not a MotionLoRA"):
        load_motion_lora(random_module("v3").state_dict())


def test_inspect_reports_lora_rank(tmp_path):
    lora = make_lora(random_module("v2"), rank=8)
    save_file(lora, tmp_path / "lora.safetensors")
    d = describe(tmp_path / "lora.safetensors")
    assert (d["format"], d["lora_rank"], d["family"], d["mid_block"]) == ("motion-lora", 8, "sd15", True)
    # 21 modules x 2 attention blocks x 4 projections, each (8 x C) + (C x 8); channels sum to 1184 over the modules
    assert d["layers"] == 21 * 2 * 4 and d["params"] == 2 * 4 * 2 * 8 * 1184 == sum(v.numel() for v in lora.values())


def test_alpha_scaled_loras_are_refused_not_guessed():
    lora = make_lora(random_module("v3"))
    lora[next(iter(lora)).replace(".down.weight", ".alpha")] = torch.tensor(4.0)
    with pytest.raises(UnknownLayoutError, match="alpha scales"):
        load_motion_lora(lora)


def test_with_loras_leaves_the_input_module_untouched():
    from motion_core.formats import with_loras
    base = load_motion_module(random_module("v2").state_dict(), heads=2)
    before = {k: t.clone() for k, t in base.state_dict().items()}
    lora = make_lora(base)
    merged = with_loras(base, [(lora, 0.5)])
    assert_same_tensors(base.state_dict(), before)
    want = expected_merge(base, [(lora, 0.5)])
    for k, v in merged.state_dict().items():
        assert torch.allclose(v, want[k], atol=1e-6), k
    key = "down_blocks.0.motion_modules.0.temporal_transformer.proj_in.weight"  # no LoRA there: shared, not copied
    assert merged.state_dict()[key].data_ptr() == base.state_dict()[key].data_ptr()
    assert merged.info.loras == ["the state dict x 0.5"] and base.info.loras == []
