"""Precision and devices without ComfyUI: the precision rules (motion_core.precision), a motion module built from a
host's layer operations and cast without rounding its position encodings, the trainer's `auto` mixed precision and
devices (the accelerator's device patched to `meta`, standing in for a GPU), and fp16 VAEs that must upcast."""

import argparse

import pytest
import torch
from torch import nn

from conftest import random_module, tiny_config
from fixture_files import tiny_published
from motion_core import MotionModule, load_motion_module
from motion_core.formats import copy_module, read_checkpoint
from motion_core.module import PositionalEncoding, TorchOps, cast_module, sinusoidal_pe
from motion_core.precision import module_dtype, training_precision, weight_dtype

F16, BF16, F32, FP8 = torch.float16, torch.bfloat16, torch.float32, torch.float8_e4m3fn


@pytest.mark.parametrize("storage, compute, requested, expected", [
    (F32, None, None, F32), (F16, None, None, F16), (BF16, None, None, BF16),
    (F16, F32, None, F16),  # fp16 weights computing in fp32 (a CPU): stored as the UNet's
    (FP8, F16, None, F16), (FP8, F32, None, F32), (FP8, BF16, None, BF16),  # fp8 flags: never fp8 unasked
    (FP8, F16, FP8, FP8), (F16, None, FP8, FP8),  # asked for explicitly
])
def test_module_dtype_follows_the_unet_and_never_fp8_unasked(storage, compute, requested, expected):
    assert module_dtype(storage, compute, requested) == expected


def test_weight_dtype_names_and_training_precision():
    assert weight_dtype("auto") is None and weight_dtype("fp8_e4m3fn") == FP8
    with pytest.raises(Exception, match="fp9"):
        weight_dtype("fp9")
    assert [training_precision(d) for d in (F16, BF16, F32)] == ["fp16", "bf16", "no"]


class Recording:
    """A host's operations: torch's layers under other classes, so the test can see which were used."""
    class Linear(nn.Linear):
        pass

    class LayerNorm(nn.LayerNorm):
        pass

    class GroupNorm(nn.GroupNorm):
        pass


def test_the_module_is_built_from_the_hosts_operations_and_loads_strict_without_copies():
    module = MotionModule(tiny_config("v2"), operations=Recording)
    kinds = {type(m) for m in module.modules() if type(m).__module__ != "motion_core.module"
             and not isinstance(m, (nn.ModuleList, nn.Identity))}
    assert kinds == {Recording.Linear, Recording.LayerNorm, Recording.GroupNorm}
    raw = read_checkpoint(tiny_published("v2"))
    loaded = load_motion_module(raw, heads=2, operations=Recording)
    assert loaded.operations is Recording and isinstance(loaded.down_blocks[0].motion_modules[0]
                                                          .temporal_transformer.proj_in, Recording.Linear)
    shared = {t.data_ptr() for t in raw.state_dict.values()}
    assert all(p.data_ptr() in shared for p in loaded.parameters())  # the file's tensors, not copies
    plain = load_motion_module(tiny_published("v2"), heads=2)
    x = torch.randn(2 * 8, 32, 4, 4, dtype=next(plain.parameters()).dtype)
    block = lambda m: m.down_blocks[0].motion_modules[0]  # noqa: E731
    assert torch.equal(block(loaded).residual(x, 8), block(plain).residual(x, 8))


def test_copies_share_what_needs_no_cast_and_keep_position_encodings_in_the_compute_dtype():
    module = random_module("v2")
    same = copy_module(module, operations=Recording)
    assert all(a.data_ptr() == b.data_ptr() for a, b in zip(same.parameters(), module.parameters()))
    assert same.operations is Recording and module.operations is TorchOps  # the input unchanged
    fp8 = copy_module(module, dtype=FP8, pe_dtype=F32)
    assert {p.dtype for p in fp8.parameters()} == {FP8}
    pes = [m.pe for m in fp8.modules() if isinstance(m, PositionalEncoding)]
    assert pes and all(pe.dtype == F32 and torch.equal(pe, sinusoidal_pe(pe.shape[1], pe.shape[2])) for pe in pes)
    assert {p.dtype for p in module.parameters()} == {F32}
    half = cast_module(copy_module(module), F16)  # pe_dtype defaults to the weights' dtype, as nn.Module.to
    assert {m.pe.dtype for m in half.modules() if isinstance(m, PositionalEncoding)} == {F16}


def test_auto_mixed_precision_is_bf16_only_where_the_gpu_has_it_natively(monkeypatch):
    from motion_core.train.config import TrainConfig
    from motion_core.train.loop import mixed_precision
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device", lambda d: __import__("contextlib").nullcontext())
    native = {"value": False}  # a T4 / V100 / RTX 20xx: bf16 only emulated
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True:
                        including_emulation or native["value"])
    auto = TrainConfig()
    assert mixed_precision(auto, "cuda") == "fp16"
    native["value"] = True  # Ampere and newer
    assert mixed_precision(auto, "cuda") == "bf16"
    assert mixed_precision(auto, "cpu") == "no"
    assert mixed_precision(TrainConfig(mixed_precision="bf16"), "cpu") == "bf16"


class Reached(Exception):
    """Raised by a stand-in once the step got there: `meta` has no values to go on with."""


def test_cli_training_puts_every_model_on_the_accelerators_device(tmp_path, monkeypatch):
    """`python -m motion_core train` with Accelerate's device patched to `meta` (a GPU's stand-in: mixing it with
    the CPU fails as CUDA does): the UNet, the text encoder's output and the VAE with its input are there."""
    pytest.importorskip("accelerate")
    pytest.importorskip("cv2")
    import accelerate
    import diffusers

    from motion_core.tiny import build_tiny_base
    from motion_core.train import cli, loop
    from train_helpers import write_clips
    data = write_clips(tmp_path / "clips", corrupt=False)
    folder = build_tiny_base(tmp_path / "base", seed=1)
    meta = torch.device("meta")
    monkeypatch.setattr(accelerate.Accelerator, "device", property(lambda self: meta))
    seen = {}

    def encode(self, x, *args, **kwargs):
        seen["vae_input"], seen["vae"] = x.device, next(self.parameters()).device
        raise Reached
    monkeypatch.setattr(diffusers.AutoencoderKL, "encode", encode)
    real_train = loop.train

    def train(config, unet, module, encode_text, dataset, out, **kwargs):
        seen["text"], seen["unet"] = encode_text(["a red disc"])[0].device, next(unet.parameters()).device
        return real_train(config, unet, module, encode_text, dataset, out, **kwargs)
    monkeypatch.setattr(loop, "train", train)
    args = argparse.Namespace(data=str(data), base=str(folder), out=str(tmp_path / "out"), motion_module=None,
                              version=None, lora=None, frames=8, stride=1, size=32, flip=True, steps=1, batch=1,
                              grad_accum=1, lr=1e-4, timestep_bias=1.0, loss_weighting="epsilon", noise_sharing=0.0,
                              warmup=0, lr_schedule="constant", save_every=1, seed=0, mixed_precision="no",
                              gradient_checkpointing=False, num_workers=0, resume=False)
    with pytest.raises(Reached):
        cli.run(args)
    assert seen == {"text": meta, "unet": meta, "vae_input": meta, "vae": meta}


def test_the_training_loop_moves_what_an_encoder_returns_to_the_training_device(monkeypatch):
    """Latents an encoder hands back on the CPU join the UNet on the training device (meta here) before the loss."""
    pytest.importorskip("accelerate")
    import accelerate

    from motion_core.train import TrainConfig, loop, new_motion_module
    from train_helpers import WordEncoder, tiny_unet
    meta = torch.device("meta")
    monkeypatch.setattr(accelerate.Accelerator, "device", property(lambda self: meta))
    seen = {}

    def loss(model, latents, text, *args, **kwargs):
        seen.update(latents=latents.device, text=text.device, unet=next(model.parameters()).device)
        raise Reached
    monkeypatch.setattr(loop, "diffusion_loss", loss)

    class Clips(torch.utils.data.Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, item):
            return torch.zeros(3, 8, 16, 16), "a red disc"
    unet = tiny_unet()
    with pytest.raises(Reached):
        loop.train(TrainConfig(frames=8, stride=1, size=16, steps=1, mixed_precision="no"), unet,
                   new_motion_module(unet, heads=2), WordEncoder().to(meta), Clips(), "unused",
                   encode_video=lambda video, generators: torch.zeros(1, 3, 8, 16, 16), progress=False)
    assert seen == {"latents": meta, "text": meta, "unet": meta}


@pytest.mark.parametrize("force_upcast", [True, False])
def test_an_fp16_vae_that_says_force_upcast_decodes_and_encodes_in_fp32(force_upcast):
    pytest.importorskip("diffusers")
    import diffusers

    from motion_core.tiny import VAE
    from motion_core.vae import decode, encode_video
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(**{**VAE, "force_upcast": force_upcast}).to(F16).eval()
    seen = []
    vae.decoder.register_forward_pre_hook(lambda m, args: seen.append(("decode", args[0].dtype)))
    vae.encoder.register_forward_pre_hook(lambda m, args: seen.append(("encode", args[0].dtype)))
    frames = decode(vae, torch.randn(1, 4, 2, 4, 4, dtype=F16))
    latents = encode_video(vae, torch.rand(2, 32, 32, 3), 2, 32, 32)
    working = F32 if force_upcast else F16
    assert seen == [("decode", working), ("encode", working)]
    assert next(vae.parameters()).dtype == F16  # put back afterwards
    assert frames.dtype == F32 and torch.isfinite(frames).all() and latents.dtype == F16
