"""Run inside ComfyUI's Python (see test_comfy_nodes.py): the pack loaded as ComfyUI loads it, its nodes run on a
tiny SD1.5-layout ComfyUI model (ModelPatcher + BaseModel with the original tiny UNet's weights), sampling through
core's KSampler and through Sample Frames. Prints one JSON object of findings."""

import hashlib
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [sys.argv[1]]
sys.argv = [sys.argv[0], "--cpu"]

import comfy.options  # noqa: E402

comfy.options.enable_args_parsing()

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import comfy.model_patcher  # noqa: E402
import comfy.supported_models  # noqa: E402
import comfy.utils  # noqa: E402
import folder_paths  # noqa: E402
import nodes as comfy_nodes  # noqa: E402
from pack_import import load_pack  # noqa: E402,F401  (comfy_train_check imports it from here too)
from fixture_files import tiny_published

FIXTURES = ROOT / "tests" / "fixtures"
UNET = {"image_size": 12, "out_channels": 4, "use_spatial_transformer": True, "legacy": False, "in_channels": 4,
        "model_channels": 32, "num_res_blocks": [2, 2, 2, 2], "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
        "channel_mult": [1, 1, 1, 1], "transformer_depth_middle": 1, "use_linear_in_transformer": False,
        "context_dim": 32, "num_heads": 2, "num_head_channels": -1, "adm_in_channels": None,
        "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], "use_temporal_attention": False,
        "use_temporal_resblock": False, "dtype": torch.float32}


def tiny_model():
    config = comfy.supported_models.SD15(dict(UNET))
    model = config.get_model({})
    full = load_file(str(FIXTURES / "tiny_unet_v2_full.safetensors"))
    to_ldm = comfy.utils.unet_to_diffusers(UNET)
    model.diffusion_model.load_state_dict({ldm: full[d] for d, ldm in to_ldm.items() if d in full}, strict=True)
    return comfy.model_patcher.ModelPatcher(model, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))


def digest(module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.float().numpy().tobytes())
    return h.hexdigest()


def tiny_folders() -> Path:
    """A temporary ComfyUI model + output folder with the tiny v2 set as models/animatediff_models/mm_tiny_v2
    (heads recorded in its metadata, as a published file would not)."""
    models = Path(tempfile.mkdtemp())
    (models / "mm").mkdir()
    save_file(load_file(str(tiny_published("v2"))), models / "mm" / "mm_tiny_v2.safetensors",
              metadata={"unet_config": json.dumps({"motion_module_kwargs": {"num_attention_heads": 2}})})
    folder_paths.folder_names_and_paths["animatediff_models"] = ([str(models / "mm")], {".safetensors"})
    folder_paths.set_output_directory(str(models / "out"))
    return models


def main():
    pack = load_pack()
    N = pack.NODE_CLASS_MAPPINGS
    results = {"nodes": sorted(N)}
    tiny_folders()

    base = tiny_model()
    before, sampling_before = digest(base.model.diffusion_model), base.get_model_object("model_sampling")
    g0 = torch.Generator().manual_seed(0)
    pos0, neg0 = [[torch.randn(1, 7, 32, generator=g0), {}]], [[torch.randn(1, 7, 32, generator=g0), {}]]
    (plain_first,) = comfy_nodes.common_ksampler(base, 7, 2, 6.0, "euler", "normal", pos0, neg0,
                                                 {"samples": torch.zeros(16, 4, 2, 2)})
    (mm,) = N["MC_LoadMotionModule"]().load("mm_tiny_v2.safetensors")
    (model,) = N["MC_InjectMotionModule"]().inject(base, mm, 1.0, 1.0, "auto")
    g = torch.Generator().manual_seed(0)
    positive = [[torch.randn(1, 7, 32, generator=g), {}]]
    negative = [[torch.randn(1, 7, 32, generator=g), {}]]
    latent = {"samples": torch.zeros(16, 4, 2, 2)}

    calls = {"pre_cfg": 0, "calc_cond_batch": 0}

    def pre_cfg(args):
        calls["pre_cfg"] += 1
        return args["conds_out"]

    def calc_cond_batch(args):
        import comfy.samplers
        calls["calc_cond_batch"] += 1
        return comfy.samplers.calc_cond_batch(args["model"], args["conds"], args["input"], args["sigma"],
                                              args["model_options"])

    (ksampler,) = comfy_nodes.common_ksampler(model, 7, 2, 6.0, "euler", "normal", positive, negative, latent)
    (frames,) = N["MC_SampleFrames"]().sample(model, positive, negative, 16, 16, 16, 7, 2, 6.0, "euler", "normal",
                                              16, 4, "static", False, "pyramid", "independent", 1.0, latent=latent)
    results["ksampler_vs_sample_frames_max_abs"] = (ksampler["samples"] - frames["samples"]).abs().max().item()
    (plain,) = comfy_nodes.common_ksampler(base, 7, 2, 6.0, "euler", "normal", positive, negative, latent)
    results["motion_changes_output"] = bool((plain["samples"] - ksampler["samples"]).abs().max().item() > 1e-3)

    from comfy_extras import nodes_custom_sampler as custom
    (noise,) = custom.RandomNoise().get_noise(7)
    (guider,) = custom.CFGGuider().get_guider(model, positive, negative, 6.0)
    (sampler,) = custom.KSamplerSelect().get_sampler("euler")
    (sigmas,) = custom.BasicScheduler().get_sigmas(model, "normal", 2, 1.0)
    advanced = custom.SamplerCustomAdvanced().sample(noise, guider, sampler, sigmas, latent)[0]
    results["sampler_custom_advanced_vs_ksampler_max_abs"] = (advanced["samples"] - ksampler["samples"]).abs().max().item()

    hooked = model.clone()
    hooked.set_model_sampler_pre_cfg_function(pre_cfg)
    if hasattr(hooked, "set_model_sampler_calc_cond_batch_function"):  # (ComfyUI 0.3.44+)
        hooked.set_model_sampler_calc_cond_batch_function(calc_cond_batch)
    (with_hooks,) = comfy_nodes.common_ksampler(hooked, 7, 2, 6.0, "euler", "normal", positive, negative, latent)
    results["core_hooks_ran"] = calls
    results["core_hooks_same_result"] = bool(torch.allclose(with_hooks["samples"], ksampler["samples"], atol=1e-5))

    travel = [[torch.randn(48, 7, 32, generator=g), {}]]  # prompt travel: one conditioning per frame
    (long,) = N["MC_SampleFrames"]().sample(model, travel, negative, 48, 16, 16, 3, 2, 6.0, "euler", "normal",
                                            16, 4, "uniform", False, "pyramid", "freenoise", 1.0)
    results["long_shape"] = list(long["samples"].shape)
    results["long_finite"] = bool(torch.isfinite(long["samples"]).all())
    try:
        comfy_nodes.common_ksampler(model, 7, 2, 6.0, "euler", "normal", positive, negative,
                                    {"samples": torch.zeros(48, 4, 2, 2)})
    except Exception as e:  # noqa: BLE001 - reporting what the user would see
        results["too_many_frames_error"] = f"{type(e).__name__}: {e}"

    sdxl = load_file(str(FIXTURES / "tiny_mm_sdxl.safetensors"))
    xl_sd = {f"{b}.motion_modules.{j}.{k}": v for b in ("down_blocks.0", "down_blocks.1", "down_blocks.2")
             for j in range(2) for k, v in sdxl.items()}
    xl_sd.update({f"up_blocks.{i}.motion_modules.{j}.{k}": v for i in range(3) for j in range(3) for k, v in sdxl.items()})
    from motion_core_pack.motion_core import load_motion_module
    try:
        N["MC_InjectMotionModule"]().inject(base, load_motion_module(xl_sd, heads=2), 1.0, 1.0, "auto")
    except Exception as e:  # noqa: BLE001
        results["wrong_family_error"] = f"{type(e).__name__}: {e}"

    # the base MODEL afterwards: sampling it gives what it gave before anything was injected, and once ComfyUI
    # unloads the models, not a layer of ours is left in the shared UNet
    (plain_last,) = comfy_nodes.common_ksampler(base, 7, 2, 6.0, "euler", "normal", pos0, neg0,
                                                {"samples": torch.zeros(16, 4, 2, 2)})
    results["base_same_samples_after"] = bool(torch.equal(plain_first["samples"], plain_last["samples"]))
    import comfy.model_management
    comfy.model_management.unload_all_models()
    results["base_unchanged"] = digest(base.model.diffusion_model) == before
    results["base_sampling_unchanged"] = base.get_model_object("model_sampling") is sampling_before
    results["layers_left_in_base"] = sum(type(m).__name__ == "MotionLayer" for m in base.model.diffusion_model.modules())
    betas = model.get_model_object("model_sampling").sigmas
    results["sigma_max_injected_vs_base"] = [betas[-1].item(), sampling_before.sigmas[-1].item()]

    # auto beta schedule by version: AnimateLCM samples on LCM's distilled timesteps over sqrt_linear betas
    lcm_module = load_motion_module(tiny_published("v2"), heads=2, version="animatelcm")
    (lcm_model,) = N["MC_InjectMotionModule"]().inject(base, lcm_module, 1.0, 1.0, "auto")
    lcm_sampling = lcm_model.get_model_object("model_sampling")
    results["animatelcm_sampling"] = {"classes": [c.__name__ for c in type(lcm_sampling).__mro__],
                                      "sigmas": len(lcm_sampling.sigmas), "sigma_max": lcm_sampling.sigmas[-1].item(),
                                      "v2_sigma_max": betas[-1].item()}
    images = torch.rand(16, 24, 32, 3)
    ui = N["MC_SaveAnimation"]().save(images, "mc/test", "webp", 8.0, 0, 90, prompt={"1": {"class_type": "X"}},
                                      extra_pnginfo={"workflow": {"nodes": []}})
    entry = ui["ui"]["images"][0]
    saved = Path(folder_paths.get_output_directory()) / entry["subfolder"] / entry["filename"]
    from motion_core_pack.motion_core.media import read_metadata
    results["saved"] = {"exists": saved.exists(), "metadata": read_metadata(saved), "ui": {k: list(v) if isinstance(v, tuple) else v for k, v in ui["ui"].items()}}
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
