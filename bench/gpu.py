"""One prepared benchmark for a GPU machine (an H100 / H200 with torch and no network), at most ~8 minutes. Writes
gpu.json (every number, and a short report under "report") into the folder given by --out; bench/gpu.sh is the
command that runs it there. Random weights of full-size
shapes throughout, built on the device (nothing is downloaded):

  precision   fp16 and bf16 against fp32: max |difference| of the injected SD1.5 UNet + v2 module and of the SDXL UNet
              + SDXL beta module (one call, 16 frames at 64x64 latents / 32x32 for SDXL);
  fp8         what ComfyUI's fp8 flags give: the UNet and the motion module stored in fp8 (e4m3fn), each layer
              casting its weights to fp16 as it runs (ComfyUI's manual-cast operations when ComfyUI is importable,
              else a stand-in that casts the same way): seconds per step and peak memory against fp16 and bf16
              storage, and the max |difference| from fp32 (the motion module kept in fp16, as Inject's `auto` does,
              and in fp8 as `weight_dtype` fp8 asks);
  speed       seconds per step (one UNet call: a CFG batch of 2 clips) and peak memory, fp16: SD1.5 at 512x512 x 16
              frames and SDXL at 1024x1024 x 16 frames, ours against diffusers' UNetMotionModel with the same weights;
  long        SD1.5 at 1024x1024 x 32 frames runs through (the chunked temporal attention keeps every kernel under
              CUDA's grid limit);
  train       training steps per second and peak memory at 16 frames 256x256 (SD1.5, bf16 autocast, AdamW on the
              module), gradient checkpointing off and on;
  compile     torch.compile of each motion module's residual, and of the whole injected UNet's forward (the path
              ComfyUI's TorchCompileModel compiles: diffusion_model with the motion layers inside): seconds per
              step against eager, and the max |difference|.

A section that fails is recorded with its error and the rest still run.

    bench/gpu.sh                                   # on the GPU machine: carried wheels, budget, $OUT/gpu.json
    bench/gpu.sh --device cpu --tiny --repeats 1   # the same, end to end, on tiny shapes (the test suite runs it)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import traceback
from pathlib import Path

import torch

SHAPES = {  # (UNet2DConditionModel config, motion module channels, text (tokens, dim), heads)
    "full": {
        "sd15": (dict(sample_size=64, cross_attention_dim=768), (320, 640, 1280, 1280), (77, 768), 8),
        "sdxl": (dict(sample_size=128, block_out_channels=(320, 640, 1280), layers_per_block=2,
                      down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                      up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                      transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20),
                      cross_attention_dim=2048, use_linear_projection=True, addition_embed_type="text_time",
                      addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816),
                 (320, 640, 1280), (77, 2048), 8),
    },
    "tiny": {
        "sd15": (dict(sample_size=8, block_out_channels=(32, 64, 64, 64), layers_per_block=2, cross_attention_dim=32,
                      attention_head_dim=2, down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                      up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3),
                 (32, 64, 64, 64), (7, 32), 2),
        "sdxl": (dict(sample_size=8, block_out_channels=(32, 64, 64), layers_per_block=2, cross_attention_dim=32,
                      attention_head_dim=2, transformer_layers_per_block=(1, 1, 2),
                      down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                      up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                      addition_embed_type="text_time", addition_time_embed_dim=8,
                      projection_class_embeddings_input_dim=32 + 6 * 8),
                 (32, 64, 64), (7, 32), 2),
    },
}
# latent side and frames per section: full size / tiny
SIZES = {"precision": {"sd15": (64, 16, 4, 8), "sdxl": (32, 16, 4, 8)}, "speed": {"sd15": (64, 16, 8, 8),
         "sdxl": (128, 16, 8, 8)}, "long": (128, 32, 8, 8), "train": (32, 16, 8, 8)}


class Bench:
    def __init__(self, device: str, tiny: bool, repeats: int):
        self.device, self.tiny, self.repeats = torch.device(device), tiny, repeats
        self.shapes = SHAPES["tiny" if tiny else "full"]

    def size(self, entry) -> tuple[int, int]:
        """(latent side, frames) of a SIZES entry."""
        side, frames, tiny_side, tiny_frames = entry
        return (tiny_side, tiny_frames) if self.tiny else (side, frames)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def reset_peak(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def peak_gib(self) -> float | None:
        return torch.cuda.max_memory_allocated() / 2 ** 30 if self.device.type == "cuda" else None

    def seconds(self, fn) -> float:
        fn()  # warm-up (kernels, allocator, compilation)
        times = []
        for _ in range(self.repeats):
            self.sync()
            start = time.perf_counter()
            fn()
            self.sync()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    def models(self, family: str, seed: int = 0):
        """(diffusers UNet2DConditionModel, our MotionModule) with random weights on the device, fp32."""
        from diffusers import UNet2DConditionModel

        from motion_core import MotionModule, MotionModuleConfig
        unet_config, channels, _, heads = self.shapes[family]
        torch.manual_seed(seed)
        with torch.device(self.device):
            unet = UNet2DConditionModel(**unet_config).eval()
            version = "v2" if family == "sd15" else "sdxl-beta"
            mm = MotionModule(MotionModuleConfig(family=family, version=version, channels=channels, heads=heads,
                                                 mid_block=family == "sd15"))
        with torch.no_grad():
            for name, p in mm.named_parameters():
                if ".proj_out." in name:
                    p.normal_(std=0.02)  # a trained module's contribution, not a zero one
        return unet, mm.eval()

    def inputs(self, family: str, batch: int, frames: int, side: int, dtype):
        _, _, (tokens, dim), _ = self.shapes[family]
        g = torch.Generator(device=self.device).manual_seed(1)  # drawn in fp32, then cast: the same values each dtype
        sample = torch.randn(batch, 4, frames, side, side, generator=g, device=self.device).to(dtype)
        text = torch.randn(batch, tokens, dim, generator=g, device=self.device).to(dtype)
        added = None
        if family == "sdxl":
            pooled = self.shapes["sdxl"][0].get("projection_class_embeddings_input_dim") - 6 * \
                self.shapes["sdxl"][0].get("addition_time_embed_dim")
            px = float(side * 8)
            added = {"text_embeds": torch.randn(batch, pooled, generator=g, device=self.device).to(dtype),
                     "time_ids": torch.tensor([[px, px, 0, 0, px, px]] * batch, device=self.device, dtype=dtype)}
        return sample, torch.tensor([500] * batch, device=self.device), text, added


def ours(model, sample, t, text, added):
    return model(sample, t, text, added_cond_kwargs=added) if added else model(sample, t, text)


def precision(b: Bench) -> dict:
    from motion_core import inject
    out = {}
    for family in ("sd15", "sdxl"):
        side, frames = b.size(SIZES["precision"][family])
        unet, mm = b.models(family)
        model = inject(unet, mm)
        with torch.no_grad():
            reference = ours(model, *b.inputs(family, 1, frames, side, torch.float32)).float()
            for dtype in (torch.float16, torch.bfloat16):
                model.to(dtype)
                got = ours(model, *b.inputs(family, 1, frames, side, dtype)).float()
                out[f"{family}_{str(dtype)[6:]}_max_abs_diff"] = (got - reference).abs().max().item()
                out[f"{family}_{str(dtype)[6:]}_relative"] = out[f"{family}_{str(dtype)[6:]}_max_abs_diff"] / \
                    reference.abs().max().item()
                model.to(torch.float32)
        del model, unet, mm
    return out


def diffusers_twin(unet, mm):
    """diffusers' UNetMotionModel with the same weights (ours converted to its key layout)."""
    from diffusers import MotionAdapter, UNetMotionModel

    from motion_core.formats import adapter_config, from_original
    config = {k: v for k, v in adapter_config(mm.config).items() if not k.startswith("_")}
    with torch.device(next(unet.parameters()).device):
        model = UNetMotionModel.from_unet2d(unet, MotionAdapter(**config))
    model.load_state_dict({**unet.state_dict(), **from_original(mm.state_dict(), "diffusers")}, strict=True)
    return model.eval()


def speed(b: Bench) -> dict:
    from motion_core import inject
    dtype = torch.float16 if b.device.type == "cuda" else torch.float32
    out = {"dtype": str(dtype)[6:]}
    for family in ("sd15", "sdxl"):
        side, frames = b.size(SIZES["speed"][family])
        unet, mm = b.models(family)
        twin = diffusers_twin(unet, mm).to(dtype)
        sample, t, text, added = b.inputs(family, 2, frames, side, dtype)  # a CFG batch: 2 clips
        row = {}
        with torch.no_grad():
            b.reset_peak()
            row["diffusers_s"] = b.seconds(lambda: twin(sample, t, text.repeat_interleave(frames, 0),
                                                        added_cond_kwargs=added))
            row["diffusers_peak_gib"] = b.peak_gib()
            del twin
            model = inject(unet, mm).to(dtype)
            b.reset_peak()
            row["ours_s"] = b.seconds(lambda: ours(model, sample, t, text, added))
            row["ours_peak_gib"] = b.peak_gib()
        row["time_ratio"] = row["ours_s"] / row["diffusers_s"]
        if row["ours_peak_gib"] is not None:
            row["memory_ratio"] = row["ours_peak_gib"] / row["diffusers_peak_gib"]
        out[f"{family}_{side * 8}px_{frames}f"] = row
        del model, unet, mm
    return out


def long(b: Bench) -> dict:
    from motion_core import inject
    side, frames = b.size(SIZES["long"])
    dtype = torch.float16 if b.device.type == "cuda" else torch.float32
    unet, mm = b.models("sd15")
    model = inject(unet, mm).to(dtype)
    b.reset_peak()
    with torch.no_grad():
        seconds = b.seconds(lambda: ours(model, *b.inputs("sd15", 1, frames, side, dtype)))
    return {"px": side * 8, "frames": frames, "seconds": seconds, "peak_gib": b.peak_gib(), "ran": True}


def train(b: Bench) -> dict:
    from motion_core import inject
    from motion_core.train.model import gradient_checkpointing
    side, frames = b.size(SIZES["train"])
    out = {"px": side * 8, "frames": frames}
    autocast = torch.bfloat16 if b.device.type == "cuda" else None
    for checkpointing in (False, True):
        unet, mm = b.models("sd15")
        unet.requires_grad_(False)
        mm.requires_grad_(True).train()
        optimizer = torch.optim.AdamW(mm.parameters(), lr=1e-4)
        model = inject(unet, mm)
        sample, t, text, _ = b.inputs("sd15", 1, frames, side, torch.float32)
        noise = torch.randn_like(sample)

        def step():
            with torch.autocast(b.device.type, dtype=autocast, enabled=autocast is not None):
                loss = torch.nn.functional.mse_loss(model(sample, t, text).float(), noise)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        b.reset_peak()
        if checkpointing:
            with gradient_checkpointing(unet, mm):
                seconds = b.seconds(step)
        else:
            seconds = b.seconds(step)
        key = "checkpointing" if checkpointing else "plain"
        out[key] = {"steps_per_s": 1 / seconds, "peak_gib": b.peak_gib(),
                    "autocast": str(autocast)[6:] if autocast else "none (CPU)"}
        del model, unet, mm, optimizer
    return out


def compile_(b: Bench) -> dict:
    from motion_core import inject
    from motion_core.module import VanillaTemporalModule
    side, frames = b.size(SIZES["speed"]["sd15"])
    dtype = torch.float16 if b.device.type == "cuda" else torch.float32
    unet, mm = b.models("sd15")
    model = inject(unet, mm).to(dtype)
    args = b.inputs("sd15", 2, frames, side, dtype)
    with torch.no_grad():
        eager = b.seconds(lambda: ours(model, *args))
        reference = ours(model, *args).float()
        modules = [m for m in mm.modules() if isinstance(m, VanillaTemporalModule)]
        backend = "eager" if b.tiny else "inductor"  # tiny: a check that it traces, not a timing
        residual = torch.compile(VanillaTemporalModule.residual, dynamic=False, backend=backend)  # one for all 21: a
        for m in modules:  # graph per input shape (level), not per module; the host calls `residual`
            m.residual = lambda x, frames, scale=1.0, m=m: residual(m, x, frames, scale)
        try:
            compiled = b.seconds(lambda: ours(model, *args))
            diff = (ours(model, *args).float() - reference).abs().max().item()
        finally:
            for m in modules:
                del m.residual
        # the whole UNet forward compiled, motion layers (forward hooks reading the call's frame count) inside
        unet_forward = unet.forward
        unet.forward = torch.compile(unet_forward, backend=backend)
        try:
            whole = b.seconds(lambda: ours(model, *args))
            whole_diff = (ours(model, *args).float() - reference).abs().max().item()
        finally:
            unet.forward = unet_forward
    return {"eager_s": eager, "compiled_s": compiled, "speedup": eager / compiled, "max_abs_diff": diff,
            "relative": diff / reference.abs().max().item(), "dtype": str(dtype)[6:],
            "unet_compiled_s": whole, "unet_speedup": eager / whole,
            "unet_relative": whole_diff / reference.abs().max().item()}


def cast_operations():
    """Layers stored in one dtype that cast their weights to the input's dtype and device as they run: ComfyUI's
    manual_cast operations when ComfyUI is importable, else a stand-in doing the same cast."""
    try:
        import comfy.ops
        return comfy.ops.manual_cast, "comfy.ops.manual_cast"
    except ImportError:
        pass
    from torch import nn
    from torch.nn import functional as F

    class Ops:
        class Linear(nn.Linear):
            def forward(self, x):
                return F.linear(x, self.weight.to(x), None if self.bias is None else self.bias.to(x))

        class LayerNorm(nn.LayerNorm):
            def forward(self, x):
                return F.layer_norm(x, self.normalized_shape, self.weight.to(x), self.bias.to(x), self.eps)

        class GroupNorm(nn.GroupNorm):
            def forward(self, x):
                return F.group_norm(x, self.num_groups, self.weight.to(x), self.bias.to(x), self.eps)
    return Ops, "a stand-in casting per layer (ComfyUI not importable)"


def cast_unet(unet, storage, compute):
    """The diffusers UNet's Linear / Conv weights stored in `storage`, cast to `compute` per call (forward pre-hooks
    swap a cast copy in and the stored weight back out: what manual cast does per layer)."""
    from torch import nn
    layers = [m for m in unet.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    for m in layers:
        m.stored = {k: getattr(m, k).detach().to(storage) for k in ("weight", "bias") if getattr(m, k) is not None}
        for k in m.stored:
            delattr(m, k)
            setattr(m, k, None)

        def before(module, args):
            for k, v in module.stored.items():
                setattr(module, k, v.to(compute))

        def after(module, args, output):  # the cast copy lives for the call only, as manual cast's does
            for k in module.stored:
                setattr(module, k, None)
        m.register_forward_pre_hook(before)
        m.register_forward_hook(after)
    return unet


def fp8(b: Bench) -> dict:
    """fp8 storage (UNet and motion module) cast per layer to fp16, against fp16 / bf16 storage and fp32."""
    from motion_core import inject
    from motion_core.formats import copy_module
    ops, which = cast_operations()
    side, frames = b.size(SIZES["precision"]["sd15"])
    compute = torch.float16 if b.device.type == "cuda" else torch.float32
    out = {"operations": which, "compute": str(compute)[6:], "px": side * 8, "frames": frames}
    with torch.no_grad():
        unet, mm = b.models("sd15")
        reference = ours(inject(unet, mm), *b.inputs("sd15", 1, frames, side, torch.float32)).float()
        del unet, mm
        rows = {"fp16": (torch.float16, torch.float16, None), "bf16": (torch.bfloat16, torch.bfloat16, None),
                "fp8 (module fp16)": (torch.float8_e4m3fn, compute, compute),
                "fp8 (module fp8)": (torch.float8_e4m3fn, compute, torch.float8_e4m3fn)}
        for name, (storage, run_dtype, module_dtype) in rows.items():
            unet, mm = b.models("sd15")
            if storage in (torch.float16, torch.bfloat16):
                unet, mm = unet.to(storage), mm.to(storage)
            else:
                unet = cast_unet(unet, storage, run_dtype)
                mm = copy_module(mm, operations=ops, dtype=module_dtype, pe_dtype=run_dtype)
            model = inject(unet, mm)
            args = b.inputs("sd15", 2, frames, side, run_dtype)
            b.reset_peak()
            seconds = b.seconds(lambda: ours(model, *args))
            got = ours(model, *b.inputs("sd15", 1, frames, side, run_dtype)).float()
            out[name] = {"seconds": seconds, "peak_gib": b.peak_gib(),
                         "max_abs_diff_vs_fp32": (got - reference).abs().max().item(),
                         "relative": (got - reference).abs().max().item() / reference.abs().max().item()}
            del model, unet, mm
    for name in rows:
        out[name]["time_vs_fp16"] = out[name]["seconds"] / out["fp16"]["seconds"]
    return out


SECTIONS = {"precision": precision, "fp8": fp8, "speed": speed, "long": long, "train": train, "compile": compile_}


def report(results: dict) -> str:
    lines = [f"bench/gpu.py on {results['device_name']} ({results['shapes']} shapes), torch {results['torch']}"]
    for name, value in results["sections"].items():  # (the report itself is not a section)
        lines.append(f"{name}: {json.dumps(value, default=lambda x: round(x, 5) if isinstance(x, float) else x)}")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for gpu.json and gpu.txt")
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="tiny shapes (a check that the script runs, on any device)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", nargs="+", choices=list(SECTIONS), help="run these sections only")
    p.add_argument("--budget", type=float, default=None, help="seconds: sections not started by then are skipped "
                                                              "(recorded as skipped); gpu.json is rewritten after "
                                                              "every section, so a killed run keeps what finished")
    args = p.parse_args()
    b = Bench(args.device, args.tiny, args.repeats)
    name = torch.cuda.get_device_name(b.device) if b.device.type == "cuda" else "CPU"
    results = {"device_name": name, "shapes": "tiny" if args.tiny else "full", "torch": torch.__version__,
               "budget_s": args.budget, "sections": {}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    begun = time.perf_counter()
    for section, fn in SECTIONS.items():
        if args.only and section not in args.only:
            continue
        started = time.perf_counter()
        if args.budget is not None and started - begun > args.budget:
            results["sections"][section] = {"skipped": f"the {args.budget:g} s budget was spent"}
        else:
            try:
                results["sections"][section] = fn(b)
            except Exception as e:  # noqa: BLE001 - one failed section is recorded, the others still run
                results["sections"][section] = {"error": f"{type(e).__name__}: {e}",
                                                "traceback": traceback.format_exc(limit=5)}
            results["sections"][section]["wall_s"] = round(time.perf_counter() - started, 2)
        print(f"{section}: {results['sections'][section]}", flush=True)
        results["report"] = report(results)
        (out / "gpu.json").write_text(json.dumps(results, indent=2) + "\n")  # the one results file
    print(report(results))


if __name__ == "__main__":
    main()
