"""Train Motion Module: the standalone training loop (motion_core.train) on a ComfyUI MODEL, CLIP and VAE."""

from __future__ import annotations

from . import bridge
from .types import CATEGORY, MOTION_MODULE


class TrainMotionModule:
    DESCRIPTION = ("Train a motion module (or, with a LoRA rank, a MotionLoRA on the connected motion module) on a "
                   "folder of videos, with the model, CLIP and VAE frozen. Saves into models/animatediff_models (or "
                   "animatediff_motion_lora) and outputs the trained module. Cancel keeps a resumable checkpoint.")
    CATEGORY = f"{CATEGORY}/training"
    RETURN_TYPES = (MOTION_MODULE,)
    RETURN_NAMES = ("motion_module",)
    OUTPUT_TOOLTIPS = ("The trained motion module (LoRA merged in LoRA mode), ready for Inject into Model.",)
    FUNCTION = "train"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "The SD1.5 image model the module is trained for; it stays frozen."}),
            "clip": ("CLIP", {"tooltip": "Encodes the captions; frozen."}),
            "vae": ("VAE", {"tooltip": "Encodes the video frames to latents; frozen."}),
            "data_folder": ("STRING", {"default": "", "tooltip":
                            "Folder of video files (mp4, webm, gif, ...) and/or folders of frames; captions from "
                            "captions.csv (file,caption) or a .txt beside each clip."}),
            "name": ("STRING", {"default": "my_motion_module", "tooltip":
                     "File name (without .safetensors) in animatediff_models / animatediff_motion_lora; the resume "
                     "state lives in output/motion_core_train/<name>."}),
            "frames": ("INT", {"default": 16, "min": 2, "max": 64, "tooltip": "Frames per training clip."}),
            "stride": ("INT", {"default": 4, "min": 1, "max": 32, "tooltip":
                       "Take every stride-th frame; short videos are spread evenly instead."}),
            "size": ("INT", {"default": 256, "min": 64, "max": 1024, "step": 8, "tooltip":
                     "Clips are resized and centre-cropped to size x size pixels."}),
            "steps": ("INT", {"default": 1000, "min": 1, "max": 1000000, "tooltip":
                      "Optimizer steps of the whole run (a resumed run continues up to this)."}),
            "batch": ("INT", {"default": 1, "min": 1, "max": 64, "tooltip": "Clips per optimizer step."}),
            "learning_rate": ("FLOAT", {"default": 1e-4, "min": 1e-7, "max": 1e-2, "step": 1e-6, "round": False,
                              "tooltip": "AdamW learning rate (weight decay 1e-2, gradient clipping at 1.0)."}),
            "lora_rank": ("INT", {"default": 0, "min": 0, "max": 256, "tooltip":
                          "0: train the whole motion module; N: train only a rank-N MotionLoRA on the connected "
                          "motion module."}),
            "save_every": ("INT", {"default": 100, "min": 1, "max": 100000, "tooltip":
                           "Steps between checkpoints (one is always written at the end and on cancel)."}),
            "resume": ("BOOLEAN", {"default": True, "tooltip":
                       "Continue the run saved under this name when there is one (same settings)."}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFF, "tooltip":
                     "Seed of every random draw: clip order, crops, flips, caption drops, timesteps, noise."}),
        }, "optional": {
            "motion_module": (MOTION_MODULE, {"tooltip": "Start from this module (default: a new zero-initialised "
                                                         "v3 module); required for LoRA training."}),
        }}

    def train(self, model, clip, vae, data_folder, name, frames, stride, size, steps, batch, learning_rate,
              lora_rank, save_every, resume, seed, motion_module=None):
        import shutil
        from pathlib import Path

        import torch

        from ..motion_core import ConfigError
        from ..motion_core.errors import MissingDependencyError
        from ..motion_core.formats import atomic_write
        from ..motion_core.precision import training_precision
        from ..motion_core.train import TrainConfig, new_motion_module, open_dataset, train, trainable_copy

        too_old = bridge.training_unsupported()
        if too_old:
            raise ConfigError(too_old)
        if lora_rank and motion_module is None:
            raise ConfigError("a LoRA rank trains a MotionLoRA on an existing motion module: connect motion_module")
        if not name or Path(name).name != name:
            raise ConfigError(f"name {name!r} must be a plain file name (no folders)")
        dtypes = bridge.model_dtypes(model)  # (storage, compute): autocast in the dtype the UNet computes in
        config = TrainConfig(frames=frames, stride=stride, size=size, steps=steps, batch=batch, lr=learning_rate,
                             lora_rank=lora_rank or None, save_every=save_every, seed=seed,
                             mixed_precision=training_precision(dtypes[1]))
        dataset = open_dataset(data_folder, config)
        try:
            from accelerate import Accelerator
        except ImportError:
            raise MissingDependencyError("Train Motion Module needs accelerate in ComfyUI's environment: pip install "
                                         "accelerate opencv-python-headless") from None
        with torch.inference_mode(False), torch.enable_grad():  # ComfyUI runs nodes in inference mode
            bridge.load_model(model)
            unet = model.model.diffusion_model
            autograd_ready(unet)
            start = new_motion_module(unet, pe_length=max(32, frames), seed=seed) if motion_module is None \
                else trainable_copy(motion_module)  # the connected module stays as it was (bit-identical)
            folder = bridge.training_folder(name)
            on_step = bridge.training_callback(steps)
            reload = lambda: bridge.load_model(model)  # noqa: E731  (encoding may have ComfyUI unload the UNet)
            trained = train(config, unet, start, caption_encoder(clip, reload), dataset, folder,
                            encode_video=video_encoder(vae, model.model.latent_format, reload), resume=resume,
                            on_step=on_step, accelerator=Accelerator(cpu=model.load_device.type == "cpu"),
                            compute_dtype=dtypes[1])
        # handed back as Load Motion Module makes one, on ComfyUI's offload device: Inject puts it under ComfyUI's
        # memory management, instead of an fp32 copy held on the training device while the output is cached
        trained = bridge.motion_for(trained.to(model.offload_device), *dtypes)
        kind = "motion_lora" if lora_rank else "motion_module"
        folder_name = bridge.LORA_FOLDER if lora_rank else bridge.MODULE_FOLDER
        target = Path(bridge.model_folder(folder_name)) / f"{name}.safetensors"
        atomic_write(target, lambda tmp: shutil.copyfile(Path(folder) / f"{kind}.safetensors", tmp))
        print(f"[motion_core] trained {steps} steps: wrote {target} (resume state in {folder})")
        return (trained,)


def autograd_ready(module) -> None:
    """ComfyUI builds and loads models under torch.inference_mode(); autograd cannot save such tensors for backward
    (the frozen host's weights are needed to backpropagate to the motion module). Swap each for a normal tensor with
    the same values, as ComfyUI's own weight patching swaps parameters: same bits, nothing global."""
    import torch
    for m in module.modules():
        for name, p in list(m._parameters.items()):
            if p is not None and p.is_inference():
                m._parameters[name] = torch.nn.Parameter(p.clone(), requires_grad=False)
        for name, b in list(m._buffers.items()):
            if b is not None and b.is_inference():
                m._buffers[name] = b.clone()


def caption_encoder(clip, reload):
    """captions -> (b, 77, d) through ComfyUI's CLIP (on its device), each distinct caption encoded once; `reload()`
    after a new one, since ComfyUI may have unloaded the training UNet to make room for the text encoder."""
    import torch
    cache = {}

    def encode(captions):
        new = [c for c in dict.fromkeys(captions) if c not in cache]
        for c in new:
            cache[c] = clip.encode_from_tokens(clip.tokenize(c)).float().cpu()
        if new:
            reload()
        return torch.cat([cache[c] for c in captions])
    return encode


def video_encoder(vae, latent_format, reload):
    """video (b, 3, f, H, W) in [-1, 1] -> latents (b, c, f, h, w) scaled as the model expects, on the video's
    device. ComfyUI's VAE (on its device, in its dtype) returns the posterior mean, so the per-clip generators are not
    needed; `reload()` after it, since ComfyUI may have unloaded the training UNet to make room for the VAE."""
    from einops import rearrange

    def encode(video, generators):
        pixels = rearrange((video + 1) / 2, "b c f h w -> (b f) h w c")  # ComfyUI IMAGE layout, [0, 1]
        latents = latent_format.process_in(vae.encode(pixels).float())
        reload()
        return rearrange(latents, "(b f) c h w -> b c f h w", b=video.shape[0]).to(video.device)
    return encode
