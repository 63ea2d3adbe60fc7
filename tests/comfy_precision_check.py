"""Run inside ComfyUI's Python (see test_comfy_precision.py): the pack as GPU users run it, emulated on the CPU, on
the tiny SD1.5-layout ComfyUI model:
  - precisions: the UNet stored in fp16 / bf16 (computing in them), and fp8 or fp16 storage cast per layer to the
    compute dtype (ComfyUI's manual cast: what --fp8_e4m3fn-unet and --fp16-unet give on a CPU, and fp8 on a GPU),
    through Inject + KSampler, Sample Frames in windows, Context Options, FreeInit, SparseCtrl and the Train node;
  - Load Motion Module under the fp8 flag, with a MotionLoRA, and fp8 module weights asked for explicitly;
  - partial loading with `meta` standing in for the GPU, at several weight budgets, then partially unloaded and
    loaded again: the UNet with its motion module and a SparseCtrl control model run on `meta` every time;
  - host syncs (scalar reads, host-to-device copies) per UNet call, counted on `meta`, with curves, a mask and
    start / end; and torch.compile(fullgraph=True) over the DIFFUSION_MODEL wrapper with the motion layers.
Prints one JSON object of findings."""

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]
from comfy_nodes_check import UNET, load_pack, tiny_folders  # noqa: E402  (puts ComfyUI on sys.path, --cpu)

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

import comfy.cli_args  # noqa: E402
import comfy.model_patcher  # noqa: E402
import comfy.sample  # noqa: E402
import comfy.supported_models  # noqa: E402
import comfy.utils  # noqa: E402
import folder_paths  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
CPU, META = torch.device("cpu"), torch.device("meta")
FP8 = torch.float8_e4m3fn
# name: (UNet storage dtype, compute dtype (None: the same, no casting))
PRECISIONS = {"fp32": (torch.float32, None), "fp16": (torch.float16, None), "bf16": (torch.bfloat16, None),
              "fp16 storage, fp32 compute": (torch.float16, torch.float32),
              "bf16 storage, fp32 compute": (torch.bfloat16, torch.float32),
              "fp8 storage, fp32 compute": (FP8, torch.float32), "fp8 storage, fp16 compute": (FP8, torch.float16)}


def tiny_model(weight=torch.float32, compute=None, load_device=CPU):
    """The tiny SD1.5-layout model stored in `weight`, computing in `compute` (manual cast), as ComfyUI builds it."""
    config = comfy.supported_models.SD15(dict(UNET, dtype=weight))
    config.set_inference_dtype(weight, compute)
    model = config.get_model({})
    full = load_file(str(FIXTURES / "tiny_unet_v2_full.safetensors"))
    to_ldm = comfy.utils.unet_to_diffusers(UNET)
    model.diffusion_model.load_state_dict({ldm: full[d] for d, ldm in to_ldm.items() if d in full}, strict=True)
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=CPU)


def conds(frames=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(frames, 7, 32, generator=g), {}]], [[torch.randn(1, 7, 32, generator=g), {}]]


def ksampler(model, frames=16, steps=2, positive=None, negative=None, size=4):
    pos, neg = conds()
    latent = torch.zeros(frames, 4, size, size)
    noise = comfy.sample.prepare_noise(latent, 7)
    return comfy.sample.sample(model, noise, steps, 6.0, "euler", "normal", positive or pos, negative or neg, latent,
                               seed=7)


def summary(x) -> dict:
    x = x.float()
    return {"finite": bool(torch.isfinite(x).all()), "std": x.std().item(), "blank_frames":
            int(sum(bool(f.std() < 1e-6) for f in x))}


def injected_module(model):
    """The motion module an injected MODEL carries (its additional ModelPatcher's model)."""
    return model.get_additional_models_with_key("motion_core")[0].model


def describe_module(module) -> dict:
    linear = module.down_blocks[0].motion_modules[0].temporal_transformer.proj_in
    return {"weights": sorted({str(p.dtype)[6:] for p in module.parameters()}),
            "pe": sorted({str(m.pe.dtype)[6:] for m in module.modules() if hasattr(m, "pe")}),
            "operations": f"{type(linear).__module__}.{type(linear).__qualname__}",
            "devices": sorted({str(p.device) for p in module.parameters()})}


def sparsectrl_files(folder: Path) -> None:
    full = load_file(str(FIXTURES / "tiny_unet_v3_full.safetensors"))
    image = {k: v for k, v in full.items() if ".motion_modules." not in k
             and k.startswith(("conv_in.", "time_embedding.", "down_blocks.", "mid_block."))}
    for variant in ("rgb", "scribble"):
        data = load_file(str(FIXTURES / f"tiny_sparsectrl_{variant}.safetensors"))
        own = {k: v for k, v in data.items() if not k.startswith("out")}
        save_file({**image, **own}, folder / f"sc_{variant}.safetensors", metadata={"heads": "2"})
    folder_paths.folder_names_and_paths["controlnet"] = ([str(folder)], {".safetensors"})


def motion_lora_file(folder: Path, module) -> str:
    """A rank-4 MotionLoRA on every attention projection, as a published file names them."""
    g = torch.Generator().manual_seed(3)
    sd = {}
    for name, p in module.named_parameters():
        if ".attention_blocks." in name and name.endswith(("to_q.weight", "to_v.weight")):
            stem = name[:-len(".weight")].rsplit(".", 1)
            sd[f"{stem[0]}.processor.{stem[1]}_lora.down.weight"] = torch.randn(4, p.shape[1], generator=g) * 0.05
            sd[f"{stem[0]}.processor.{stem[1]}_lora.up.weight"] = torch.randn(p.shape[0], 4, generator=g) * 0.05
    (folder / "lora").mkdir(exist_ok=True)
    save_file(sd, folder / "lora" / "tiny_lora.safetensors")
    folder_paths.folder_names_and_paths["animatediff_motion_lora"] = ([str(folder / "lora")], {".safetensors"})
    return "tiny_lora.safetensors"


def precision_runs(N, mm, work: Path) -> dict:
    """Every node path under each precision: outputs finite, not blank, close to fp32's; the module's dtypes."""
    from comfy_train_check import StandInVAE
    from train_helpers import write_clips
    sparsectrl_files(work)
    clips = write_clips(work / "clips", corrupt=False)
    folder_paths.folder_names_and_paths["animatediff_models"][0].append(str(work / "trained"))
    inject, sample = N["MC_InjectMotionModule"]().inject, N["MC_SampleFrames"]().sample
    pos, neg = conds()
    travel, _ = conds(24, seed=1)
    images = torch.rand(2, 32, 32, 3, generator=torch.Generator().manual_seed(5))
    out, reference = {}, {}
    for name, (weight, compute) in PRECISIONS.items():
        base = tiny_model(weight, compute)
        (model,) = inject(base, mm, 1.0, 1.0, "auto")
        r = {"module": describe_module(injected_module(model))}
        runs = {"ksampler": lambda: ksampler(model)}
        runs["sample_frames_windows"] = lambda: sample(
            model, travel, neg, 24, 32, 32, 3, 2, 6.0, "euler", "normal", 16, 4, "uniform", False, "pyramid",
            "freenoise", 1.0)[0]["samples"]
        (free_init,) = N["MC_FreeInitOptions"]().options(2, "butterworth", 4, 0.25, 0.25, False)
        (windowed,) = N["MC_ContextOptions"]().apply(model, 16, 4, "static", False, "pyramid", "independent",
                                                     free_init)
        runs["context_options_free_init"] = lambda: ksampler(windowed, frames=24)
        (control,) = N["MC_LoadSparseCtrl"]().load("sc_rgb.safetensors", model)
        (scribble,) = N["MC_LoadSparseCtrl"]().load("sc_scribble.safetensors", model)
        vae = StandInVAE()
        (p1, n1) = N["MC_ApplySparseCtrl"]().apply(pos, neg, control, images, "0, -1", 1.0, 0.0, 1.0, vae)
        (p1, n1) = N["MC_ApplySparseCtrl"]().apply(p1, n1, scribble, images, "0, 8", 1.0, 0.0, 1.0, vae)
        runs["sparsectrl_rgb_and_scribble"] = lambda: ksampler(model, positive=p1, negative=n1)
        r["sparsectrl_dtypes"] = describe_module(control.control_model.motion)["weights"]
        for run, fn in runs.items():
            try:
                x = fn()
            except Exception as e:  # noqa: BLE001 - the finding is the error a user would see
                r[run] = {"error": error(e)}
                continue
            r[run] = summary(x)
            if name == "fp32":
                reference[run] = x.float()
            else:
                r[run]["max_abs_vs_fp32"] = (x.float() - reference[run]).abs().max().item()
                r[run]["scale_fp32"] = reference[run].abs().max().item()
        r["train"] = guarded(train_run, N, base, mm, clips, work, name)
        out[name] = r
    return out


def train_run(N, base, mm, clips, work: Path, name: str) -> dict:
    from comfy_train_check import StandInClip, StandInVAE
    node = N["MC_TrainMotionModule"]()
    tag = name.replace(" ", "_").replace(",", "")
    folder_paths.set_output_directory(str(work / "out"))
    folder_paths.folder_names_and_paths["animatediff_models"] = ([str(work / "trained")], {".safetensors"})
    with torch.inference_mode():
        (trained,) = node.train(base, StandInClip(), StandInVAE(), str(clips), f"t_{tag}", 8, 1, 64, 2, 1, 1e-3, 0,
                                100, False, 0, motion_module=mm)
    losses = [json.loads(line)["loss"] for line in
              (work / "out" / "motion_core_train" / f"t_{tag}" / "loss.jsonl").read_text().splitlines()]
    (model,) = N["MC_InjectMotionModule"]().inject(base, trained, 1.0, 1.0, "auto")
    injected = injected_module(model)
    return {"losses_finite": all(torch.isfinite(torch.tensor(losses)).tolist()), "steps": len(losses),
            "output": describe_module(trained), "changed": any(
                not torch.equal(a.float().cpu(), b.float().cpu()) for a, b in zip(trained.parameters(),
                                                                                 mm.parameters())),
            "inject_uses_it_as_is": injected is trained, "samples": summary(ksampler(model))}


def fp8_flag_runs(N, work: Path) -> dict:
    """Load Motion Module under --fp8_e4m3fn-unet (emulated: the flag set in ComfyUI's args), a MotionLoRA on it,
    Inject on an fp8 model, and fp8 module weights asked for on Inject."""
    from motion_core_pack.motion_core import load_motion_module
    from fixture_files import tiny_published
    reference = load_motion_module(tiny_published("v2"), heads=2)
    args = comfy.cli_args.args
    args.fp8_e4m3fn_unet = True
    try:
        (mm,) = N["MC_LoadMotionModule"]().load("mm_tiny_v2.safetensors")
    finally:
        args.fp8_e4m3fn_unet = False
    worst = max((a.float() - b.float()).abs().max().item() / max(b.abs().max().item(), 1e-12)
                for a, b in zip(mm.parameters(), reference.parameters()))
    pe = next(m.pe for m in mm.modules() if hasattr(m, "pe"))
    lora = motion_lora_file(work, mm)
    (merged,) = N["MC_ApplyMotionLoRA"]().apply(mm, lora, 1.0)
    changed = sum(int((a != b).sum()) for a, b in zip(merged.parameters(), mm.parameters()))
    base = tiny_model(FP8, torch.float32)
    inject = N["MC_InjectMotionModule"]().inject
    (auto,) = inject(base, merged, 1.0, 1.0, "auto")
    (fp8,) = inject(base, merged, 1.0, 1.0, "auto", weight_dtype="fp8_e4m3fn")
    auto_out, fp8_out = ksampler(auto), ksampler(fp8)
    return {"loaded": describe_module(mm), "max_rel_weight_error": worst,
            "pe_max_error_vs_file": (pe.float() - next(m.pe for m in reference.modules() if hasattr(m, "pe")).float()
                             ).abs().max().item(),
            "lora_changed_weights": changed, "lora_weights": sum(p.numel() for p in mm.parameters()),
            "inject_auto": describe_module(injected_module(auto)), "inject_fp8": describe_module(injected_module(fp8)),
            "auto_samples": summary(auto_out), "fp8_samples": summary(fp8_out),
            "fp8_vs_auto_max_abs": (fp8_out - auto_out).abs().max().item(), "scale": auto_out.abs().max().item()}


def unet_call(model, frames=16, device=META, dtype=torch.float32, options=None):
    """One call of the injected MODEL's diffusion_model as the sampler makes it (wrappers, patches, cond_or_uncond:
    two clips, cond and uncond), on `device`."""
    transformer_options = {**model.model_options["transformer_options"], "wrappers": model.wrappers,
                           "cond_or_uncond": [0, 1], **(options or {})}
    x = torch.randn(2 * frames, 4, 8, 8, device=device, dtype=dtype)
    t = torch.full((2 * frames,), 500.0, device=device)
    context = torch.randn(2 * frames, 7, 32, device=device, dtype=dtype)
    return model.model.diffusion_model(x, t, context=context, transformer_options=transformer_options)


class MetaToCpu(torch.overrides.TorchFunctionMode):
    """`meta` stands in for the GPU, but has no data to move back: a meta tensor sent to the CPU (unloading) comes
    back as an uninitialised CPU tensor of its shape and dtype. Placement is what is tested here, not values."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.Tensor.to and args and isinstance(args[0], torch.Tensor) and args[0].device == META:
            target = [a for a in list(args[1:]) + list(kwargs.values()) if isinstance(a, (torch.device, str))]
            dtype = [a for a in list(args[1:]) + list(kwargs.values()) if isinstance(a, torch.dtype)]
            if target and torch.device(target[0]).type == "cpu":
                return torch.empty(args[0].shape, dtype=dtype[0] if dtype else args[0].dtype, device=CPU)
        return func(*args, **kwargs)


def partial_loading_runs(N, mm) -> dict:
    """ModelPatcher.load / partially_unload / partially_load at several budgets with `meta` as the load device: the
    UNet (with the module injected) and the SparseCtrl control model run on meta after each."""
    base = tiny_model(torch.float32, None, load_device=META)
    (model,) = N["MC_InjectMotionModule"]().inject(base, mm, 1.0, 1.0, "auto")
    motion = model.get_additional_models_with_key("motion_core")[0]
    size = motion.model_size()
    out = {"module_bytes": size, "budgets": []}
    with MetaToCpu():
        for fraction in (0.1, 0.35, 0.7):
            out["budgets"].append(partial_budget(model, base, motion, size, fraction))
        out["sparsectrl"] = sparsectrl_partial(N, model)
    return out


def partial_budget(model, base, motion, size, fraction) -> dict:
    """Load the UNet and the module partly (`fraction` of each), run; unload a fifth of the module, run; load half of
    it again, run. Each layer must be on meta or cast its weights there as it runs."""
    row = {"fraction": fraction}

    def placed() -> dict:
        layers = [m for m in motion.model.modules() if list(m.parameters(recurse=False))]
        on_meta = sum(all(p.device == META for p in m.parameters(recurse=False)) for m in layers)
        casting = sum(bool(getattr(m, "comfy_cast_weights", False)) for m in layers
                      if not all(p.device == META for p in m.parameters(recurse=False)))
        return {"layers": len(layers), "on_meta": on_meta, "elsewhere_casting": casting}
    try:
        model.patch_model(META, lowvram_model_memory=int(base.model_size() * fraction))
        motion.patch_model(META, lowvram_model_memory=int(size * fraction))
        row["loaded"] = {"bytes": motion.loaded_size(), **placed()}
        row["first"] = list(unet_call(model).shape)
        row["freed"] = motion.partially_unload(CPU, memory_to_free=int(size * 0.2))
        row["unloaded"] = placed()
        row["after_unload"] = list(unet_call(model).shape)
        row["added"] = motion.partially_load(META, extra_memory=int(size * 0.5))
        row["reloaded"] = placed()
        row["after_reload"] = list(unet_call(model).shape)
    except Exception as e:  # noqa: BLE001 - the finding is the error a user would see
        row["error"] = error(e)
    finally:
        motion.detach()
        model.detach()
    return row


def sparsectrl_partial(N, model) -> dict:
    """The SparseCtrl control model (with its motion layers) loaded partly onto meta, run there."""
    from motion_core_pack.motion_core.frames import frames_context
    (control,) = N["MC_LoadSparseCtrl"]().load("sc_rgb.safetensors", model)
    patcher = comfy.model_patcher.ModelPatcher(control.control_model, load_device=META, offload_device=CPU)
    rows = []
    for fraction in (0.1, 0.5):
        try:
            patcher.patch_model(META, lowvram_model_memory=int(patcher.model_size() * fraction))
            hint = torch.zeros(16, 5, 8, 8, device=META)
            with frames_context(16):
                res = control.control_model(x=torch.zeros(16, 4, 8, 8, device=META), hint=hint,
                                            timesteps=torch.full((16,), 500.0, device=META),
                                            context=torch.zeros(16, 7, 32, device=META))
            rows.append({"fraction": fraction, "outputs": len(res["output"])})
        except Exception as e:  # noqa: BLE001
            rows.append({"fraction": fraction, "error": error(e)})
        finally:
            patcher.detach()
    return rows


class SyncCounter(TorchDispatchMode):
    """Counts what would stall a GPU: reads of a device tensor's value on the host (item, float, bool: aten's
    _local_scalar_dense) and copies from the CPU to the device (`meta` here): tensors moved there, and tensors made
    there from Python data (torch.tensor(..., device=...), which dispatch does not show: a function mode counts it).
    Meta tensors have no value: a read returns 0 so the run goes on and every one is counted."""

    def __init__(self):
        super().__init__()
        self.reads, self.copies = [], []
        counter = self

        class Made(torch.overrides.TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                if func in (torch.tensor, torch.as_tensor, torch.asarray) and kwargs.get("device") is not None \
                        and torch.device(kwargs["device"]) == META and not isinstance(args[0], torch.Tensor):
                    counter.copies.append("from Python data")
                return func(*args, **kwargs)
        self.made = Made()

    def __enter__(self):
        self.made.__enter__()
        return super().__enter__()

    def __exit__(self, *exc):
        super().__exit__(*exc)
        return self.made.__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = str(func.overloadpacket.__name__) if hasattr(func, "overloadpacket") else str(func)
        if name == "_local_scalar_dense" and args[0].device == META:
            self.reads.append(name)
            return 0
        out = func(*args, **kwargs)
        if name in ("_to_copy", "copy_", "lift_fresh_copy", "_copy_from"):
            src = args[1] if name == "copy_" else args[0]
            dst = args[0] if name == "copy_" else out
            if isinstance(src, torch.Tensor) and isinstance(dst, torch.Tensor) and src.device == CPU \
                    and dst.device == META:
                self.copies.append(tuple(src.shape))
        return out


def sync_runs(N, mm) -> dict:
    """Host syncs per UNet call on meta: constant motion, curves + a mask per frame, start / end, in a window."""
    base = tiny_model(torch.float32, None, load_device=META)
    inject = N["MC_InjectMotionModule"]().inject
    masks = torch.rand(32, 16, 16, generator=torch.Generator().manual_seed(2))
    cases = {"constant": inject(base, mm, 1.0, 1.0, "auto")[0],
             "curves_and_mask": inject(base, mm, 1.0, 1.0, "auto", masks, "0:1.0, 31:0.2", "0:1.0, 31:1.3")[0],
             "start_end": inject(base, mm, 1.0, 1.0, "auto", None, "", "", 0.2, 0.8)[0]}
    window = {"ad_params": {"full_length": 32, "context_length": 16, "sub_idxs": list(range(8, 24)),
                            "video_length": 16}}
    with SyncCounter() as probe:  # the counter sees what it is for: a host-to-device copy and a scalar read
        float(torch.tensor([1.0, 2.0], device=META).sum())
    out = {"counter_self_check": {"reads": len(probe.reads), "copies": len(probe.copies)}}
    for name, model in cases.items():
        motion = model.get_additional_models_with_key("motion_core")[0]
        model.patch_model(META)
        motion.patch_model(META)
        try:
            unet_call(model, options=window)  # the first call of a sampling makes its window's values, once
            counts = []
            for _ in range(3):
                with SyncCounter() as counter:
                    unet_call(model, options=window)
                counts.append({"reads": len(counter.reads), "copies": len(counter.copies)})
            out[name] = counts
        finally:
            with MetaToCpu():
                motion.detach()
                model.detach()
    return out


def compile_runs(N, mm) -> dict:
    """torch.compile(fullgraph=True) over the DIFFUSION_MODEL wrapper and the motion layers (constant strength and
    scale), as ComfyUI's TorchCompileModel compiles diffusion_model with the wrapper inside. ComfyUI's own UNet
    does not compile with fullgraph (its forward reaches `open`), so the executor the wrapper calls stands in for it
    with the injected motion layers alone: the graphs made over 2 frame counts, 5 calls, several timesteps."""
    import torch._dynamo
    from torch import nn

    from motion_core_pack.motion_core.hosts.comfy import MotionLayer
    base = tiny_model()
    (model,) = N["MC_InjectMotionModule"]().inject(base, mm, 1.0, 1.0, "auto")
    wrapper = model.wrappers["diffusion_model"]["motion_core"][0]
    model.patch_model(CPU)

    class Layers(nn.Module):  # UNetModel._forward's place: (x, timesteps, context, y, control, transformer_options)
        def __init__(self, layers):
            super().__init__()
            self.layers = nn.ModuleList(layers)

        def forward(self, x, timesteps, context=None, y=None, control=None, transformer_options=None):
            for layer in self.layers:
                x = layer(x, transformer_options)
            return x
    try:
        layers = Layers([m for m in model.model.diffusion_model.modules() if isinstance(m, MotionLayer)][:3])

        def call(x, t, options):
            return wrapper(layers, x, t, None, None, None, options)
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        compiled = torch.compile(call, fullgraph=True, backend="eager")
        worst, calls = 0.0, 0
        for frames, steps in ((16, 3), (8, 2)):
            for i in range(steps):
                x, t = torch.randn(2 * frames, 32, 8, 8), torch.full((2 * frames,), 900.0 - 100 * i)
                got = compiled(x, t, {"cond_or_uncond": [0, 1]})
                worst = max(worst, (got - call(x, t, {"cond_or_uncond": [0, 1]})).abs().max().item())
                calls += 1
        return {"graphs": torch._dynamo.utils.counters["stats"]["unique_graphs"], "frame_counts": 2, "calls": calls,
                "max_abs_vs_eager": worst}
    except Exception as e:  # noqa: BLE001 - the finding is dynamo's message
        return {"error": error(e)}
    finally:
        model.detach()


def error(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e)[:400]}"


def guarded(fn, *args) -> dict:
    """fn(*args), or {"error": ...}: one failing part does not hide what the others find."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - the finding is the error a user would see
        return {"error": error(e)}


def main():
    import comfy.ldm.modules.attention as attention
    # ComfyUI's --cpu attention (sub-quadratic) sizes its chunks from the device's free memory, which `meta` cannot
    # tell; PyTorch's attention (what ComfyUI picks on most GPUs) runs on meta
    attention.optimized_attention = attention.attention_pytorch
    pack = load_pack()
    N = pack.NODE_CLASS_MAPPINGS
    work = Path(tempfile.mkdtemp())
    tiny_folders()
    (mm,) = N["MC_LoadMotionModule"]().load("mm_tiny_v2.safetensors")
    results = {"fp8_flag": guarded(fp8_flag_runs, N, work), "precisions": guarded(precision_runs, N, mm, work),
               "partial_loading": guarded(partial_loading_runs, N, mm), "syncs": guarded(sync_runs, N, mm),
               "compile": guarded(compile_runs, N, mm)}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
