"""The training loop. Reads top to bottom: freeze the host, make the motion module (or a MotionLoRA) trainable,
resume if asked, then per optimizer step: `grad_accum` micro steps of epsilon-prediction MSE, clip, AdamW, log,
checkpoint. Accelerate supplies the device, mixed precision and multi-process data parallelism (DDP over gloo /
NCCL, started by `accelerate launch` or torchrun); nothing else here knows how many processes there are except
for picking this process's share of each global batch.

Every random draw of a sample (which clip, crop start, flip, caption drop, timestep, noise, VAE posterior noise) comes
from a generator seeded by (seed, step, index of the sample in the global batch): a resumed run continues exactly,
and N processes x batch B, 1 process x batch N*B and grad_accum N x batch B make the same updates.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError, MissingDependencyError
from ..formats.load import with_loras
from ..frames import check_frames
from ..module import MotionModule
from ..precision import native_bf16
from .checkpoint import RunFiles, load_checkpoint, save_checkpoint
from .config import TrainConfig, alphas_cumprod, lr_at
from .data import StepBatches, collate, global_indices, sample_seed
from .lora import add_lora, lora_state_dict, remove_lora
from .model import EncodeText, EncodeVideo, gradient_checkpointing, motion_unet

OnStep = Callable[[int, float], None]  # (steps done, loss) after every optimizer step; may raise to stop the run


AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def mixed_precision(config: TrainConfig, device: torch.device | str | None = None) -> str:
    """"auto": bf16 on a CUDA GPU that computes it natively, fp16 on other CUDA GPUs (T4, V100, RTX 20xx only
    emulate bf16, slowly), none on a CPU. device: the training device (default: CUDA when there is one)."""
    if config.mixed_precision != "auto":
        return config.mixed_precision
    device = torch.device(device if device is not None else "cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda":
        return "no"
    return "bf16" if native_bf16(device) else "fp16"


def sdxl_conditions(pooled: torch.Tensor, size: int) -> dict[str, torch.Tensor]:
    """SDXL's added conditions: pooled text (b, 1280) and time ids (original size, crop top-left, target size),
    here the training size, no crop offset and the training size (clips are resized before the centre crop)."""
    time_ids = torch.tensor([size, size, 0, 0, size, size], dtype=pooled.dtype, device=pooled.device)
    return {"text_embeds": pooled, "time_ids": time_ids.expand(pooled.shape[0], 6)}


def draw_timestep(generator: torch.Generator, num_timesteps: int, bias: float = 1.0) -> torch.Tensor:
    """(1,) int64: uniform for bias 1, else floor(T * (1 - (1 - u) ** bias)) (TrainConfig.timestep_bias)."""
    if bias == 1.0:
        return torch.randint(0, num_timesteps, (1,), generator=generator)
    u = torch.rand((1,), generator=generator, dtype=torch.float64)
    return (num_timesteps * (1 - (1 - u) ** bias)).floor().long().clamp(max=num_timesteps - 1)


def diffusion_loss(model, latents: torch.Tensor, text: torch.Tensor, generators: list[torch.Generator],
                   alphas_cumprod: torch.Tensor, num_timesteps: int, added_cond_kwargs=None,
                   timestep_bias: float = 1.0, weighting: str = "epsilon", sharing: float = 0.0) -> torch.Tensor:
    """Epsilon-prediction MSE: one timestep per clip, shared by its frames; noise from each clip's generator.
    weighting "v": each clip's squared error divided by alpha_bar_t, the MSE of v (TrainConfig.loss_weighting).
    sharing: the share of the noise's variance common to a clip's frames (TrainConfig.noise_sharing)."""
    t = torch.cat([draw_timestep(g, num_timesteps, timestep_bias) for g in generators]).to(latents.device)
    noise = torch.stack([torch.randn(latents.shape[1:], generator=g) for g in generators])  # (b, c, f, h, w)
    if sharing > 0:  # drawn after the per-frame noise: sharing 0 draws exactly what it always drew
        c, _, h, w = latents.shape[1:]
        common = torch.stack([torch.randn((c, 1, h, w), generator=g) for g in generators])  # (b, c, 1, h, w)
        noise = sharing ** 0.5 * common + (1 - sharing) ** 0.5 * noise
    noise = noise.to(latents)
    a = alphas_cumprod[t].view(-1, 1, 1, 1, 1)  # (b, 1, 1, 1, 1) over latents (b, c, f, h, w)
    noisy = a.sqrt() * latents + (1.0 - a).sqrt() * noise
    prediction = model(noisy, t, text, added_cond_kwargs)
    if weighting == "v":  # |v - v_hat|^2 = |eps - eps_hat|^2 / alpha_bar for a noise-predicting model
        return ((prediction.float() - noise.float()) ** 2 / a.float()).mean()
    return F.mse_loss(prediction.float(), noise.float())


def train(config: TrainConfig, unet: torch.nn.Module, motion_module: MotionModule, encode_text: EncodeText,
          dataset, out: str | Path, *, encode_video: EncodeVideo | None = None, resume: bool = False,
          on_step: OnStep | None = None, accelerator=None, progress: bool = True,
          compute_dtype: torch.dtype | None = None) -> MotionModule:
    """Train `motion_module` (or a MotionLoRA on it) in `unet`, writing checkpoints into `out`; returns the trained
    module (LoRA merged in LoRA mode), frozen and in eval mode.

    unet: a diffusers UNet2DConditionModel (or ComfyUI's SD1.5 UNetModel), frozen here (requires_grad off; its
    weights are never changed).
    encode_text: captions -> (b, n, d), or ((b, n, d), pooled) with pooled None, (b, 1280) or {"text_embeds":
      (b, 1280)} (SDXL), as motion_core.base.BaseModel.encode_prompt returns; frozen.
    encode_video: video (b, 3, f, H, W) in [-1, 1] + per-clip generators -> latents (b, c, f, h, w), frozen; None
    trains in pixel space (a UNet with 3 input channels).
    dataset: `dataset[(clip index, seed)] -> (video (3, f, H, W), caption)` (data.ClipDataset).
    resume: continue from `out/resume.pt` when it exists. on_step: called after every step (progress, interrupt);
    an exception it raises stops the run after a resumable checkpoint of the last finished step is written.
    compute_dtype: the dtype a ComfyUI host computes in (its manual-cast dtype; default: its UNet's dtype)."""
    try:
        from accelerate import Accelerator
        from tqdm.auto import tqdm
    except ImportError as e:
        raise MissingDependencyError(f"training needs {e.name}: pip install 'motion-core[train]' (accelerate, "
                                     "opencv-python-headless, tqdm)") from None

    check_frames(config.frames, motion_module.config.pe_length)
    made_for_inference = [n for n, t in motion_module.state_dict().items() if t.is_inference()]
    if made_for_inference:
        raise ConfigError(f"the motion module's tensors ({made_for_inference[0]} and {len(made_for_inference) - 1} "
                          "more) were made under torch.inference_mode(), as ComfyUI loads every model, and autograd "
                          "cannot train them: train motion_core.train.trainable_copy(module) instead")
    if len(dataset) == 0:
        raise DataError("the data set holds no clips")
    accelerator = accelerator or Accelerator()  # devices and processes; mixed precision is ours (below)
    device, world, rank = accelerator.device, accelerator.num_processes, accelerator.process_index
    # autocast in the frozen host's dtype (fp16 with loss scaling), the trained weights fp32: torch's own autocast
    # and GradScaler, which also run on the CPU (Accelerate keeps fp16 for GPUs)
    precision = mixed_precision(config, device)
    autocast = (lambda: torch.autocast(device.type, dtype=AMP_DTYPES[precision])) if precision in AMP_DTYPES \
        else contextlib.nullcontext
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != world:  # each process would train alone and all would write the same files
        raise ConfigError(f"{launched} processes were launched but Accelerate sees {world}: on a machine without GPUs "
                          "set ACCELERATE_USE_CPU=true for multi-process CPU training (gloo)")
    files = RunFiles(Path(out), lora=config.lora_rank is not None)

    # ---- model: the host frozen, the motion module (or only its MotionLoRA) trainable, in fp32 --------------------
    unet.requires_grad_(False).to(device)
    motion_module.to(device=device, dtype=torch.float32)
    if config.lora_rank is None:
        params = list(motion_module.requires_grad_(True).parameters())
    else:
        params = add_lora(motion_module, config.lora_rank, seed=config.seed)
    motion_module.train()
    optimizer = torch.optim.AdamW(params, lr=config.lr, betas=config.adam_betas, eps=config.adam_eps,
                                  weight_decay=config.weight_decay)
    step, log_rows = 0, []
    if resume and files.resume.exists():
        step, log_rows = load_checkpoint(files, motion_module, optimizer, config, world, scaler)
    alphas = alphas_cumprod(config).to(device)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=StepBatches(len(dataset), config, world, rank, step),
                                         num_workers=config.num_workers, collate_fn=collate)

    def checkpoint(done: int) -> None:
        if accelerator.is_main_process:
            save_checkpoint(files, motion_module, optimizer, done, config, world, log_rows, scaler)

    animated = motion_unet(unet, motion_module, compute_dtype)  # diffusers or ComfyUI host, MotionUNet's convention
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(remove_lora, motion_module)  # runs last: LoRA pairs off, the module's own weights intact
        cleanup.callback(animated.eject)
        if config.gradient_checkpointing:
            cleanup.enter_context(gradient_checkpointing(unet, motion_module))
        model, optimizer = accelerator.prepare(animated, optimizer)
        batches = iter(loader)
        bar = cleanup.enter_context(tqdm(total=config.steps, initial=step, unit="step", dynamic_ncols=True,
                                         disable=not (progress and accelerator.is_local_main_process)))
        saved = step
        while step < config.steps:
            started = time.perf_counter()
            lr = lr_at(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            step_loss = torch.zeros((), device=device)
            for micro in range(config.grad_accum):
                video, captions = next(batches)  # this process's clips: (b, 3, f, H, W), b = config.batch
                indices = global_indices(micro, rank, config, world)
                generators = [torch.Generator().manual_seed(sample_seed(config.seed, step, i, "noise"))
                              for i in indices]
                captions = ["" if float(torch.rand((), generator=g)) < config.caption_dropout else c
                            for c, g in zip(captions, generators)]
                with torch.no_grad():
                    text, pooled = encode_text(captions), None
                    if isinstance(text, tuple):  # (hidden states, pooled) as BaseModel.encode_prompt returns it:
                        text, pooled = text     # pooled None (SD1.5), a tensor or {"text_embeds": ...} (SDXL)
                        if isinstance(pooled, dict):
                            pooled = pooled["text_embeds"]
                    text = text.to(device)
                    added = None if pooled is None else sdxl_conditions(pooled.to(device), config.size)
                    video = video.to(device)
                    if encode_video is None:
                        latents = video
                    else:
                        latents = encode_video(video, [torch.Generator().manual_seed(
                            sample_seed(config.seed, step, i, "vae")) for i in indices])
                    # on the training device whatever device the encoder ran on; torch 2.13's CPU backward crashed
                    # on strided (b, c, f, h, w)
                    latents = latents.to(device).contiguous()
                # DDP averages gradients over processes only on the last micro step; earlier ones accumulate locally
                with accelerator.no_sync(model) if micro < config.grad_accum - 1 else contextlib.nullcontext():
                    with autocast():
                        loss = diffusion_loss(model, latents, text, generators, alphas, config.num_timesteps, added,
                                              config.timestep_bias, config.loss_weighting, config.noise_sharing)
                    scaled = loss / config.grad_accum
                    accelerator.backward(scaler.scale(scaled) if scaler is not None else scaled)
                step_loss += loss.detach() / config.grad_accum
            if scaler is not None:
                scaler.unscale_(optimizer)  # clip the true gradients; a step with inf / NaN ones is skipped
            if config.grad_clip > 0:
                accelerator.clip_grad_norm_(params, config.grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1

            loss_value = accelerator.reduce(step_loss, "mean").item()  # mean over the global batch
            seconds = time.perf_counter() - started
            if step % config.log_every == 0:
                log_rows.append({"step": step, "loss": loss_value, "lr": lr, "seconds": round(seconds, 4)})
            bar.set_postfix(loss=f"{loss_value:.4f}", refresh=False)
            bar.update(1)
            if step % config.save_every == 0 or step == config.steps:
                checkpoint(step)
                saved = step
                accelerator.wait_for_everyone()
            if on_step is not None:
                try:
                    on_step(step, loss_value)
                except BaseException:  # interrupted (ComfyUI's cancel, Ctrl-C): keep the finished steps, resumable
                    # (single-process use: other processes of a multi-process run are not told)
                    if saved != step:
                        checkpoint(step)
                    raise
        trained = lora_state_dict(motion_module) if config.lora_rank is not None else None

    motion_module.requires_grad_(False).eval()
    if trained is not None:
        return with_loras(motion_module, [(trained, 1.0)])
    return motion_module
