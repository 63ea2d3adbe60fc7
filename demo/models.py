"""The demo's image models: a tiny pixel-space text-to-image model in diffusers' folder layout, and how it trains.

Pixel space, no VAE: the world is 32x32 px, so a VAE would only add a model to train and an error to explain. The
UNet denoises RGB in [-1, 1] directly (3 channels in and out); `motion_core.base.load_base` reads a folder without
`vae/` as such a model, and `generate` / `train` work on it unchanged. Its layout is SD1.5's (4 levels, cross-
attention on levels 2 and 3), so `python -m motion_core train` gives it a v3 motion module of the original layout.
The text encoder is a 2-layer CLIP over a word-level tokenizer of the world's vocabulary (one token per word).

Training (`train_images`): epsilon prediction on AnimateDiff's betas (linspace(0.00085, 0.012, 1000), the schedule
the motion module trains and samples on), AdamW, 10% empty captions (for classifier-free guidance), and an
exponential moving average of the weights, which is what gets saved. Three modes: the base (UNet and text encoder
from scratch), a full fine-tune (the UNet only, "DreamBooth-style"), and a LoRA on the UNet's attention projections,
self- and / or cross-attention (saved in diffusers' peft key layout, which `motion_core.formats.lora.load_image_lora`
reads).
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from motion_core.errors import ConfigError
from motion_core.formats.files import atomic_write
from motion_core.schedule import scheduler_config
from motion_core.train import parametrize_loras, unparametrize_loras
from motion_core.train.config import TrainConfig, alphas_cumprod
from motion_core.tiny import write_tokenizer
from .world import vocabulary

SIZE = 32  # px, square
FRAMES = 8  # frames per clip: the motion stages train on them and the demo samples them
TEXT_DIM = 64
MAX_TOKENS = 16  # the longest caption is 13 words and a comma, plus start / end
UNET = dict(sample_size=SIZE, in_channels=3, out_channels=3, block_out_channels=(32, 32, 64, 64), layers_per_block=1,
            cross_attention_dim=TEXT_DIM, attention_head_dim=8, norm_num_groups=8,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"))
TEXT = dict(hidden_size=TEXT_DIM, intermediate_size=4 * TEXT_DIM, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=MAX_TOKENS, projection_dim=TEXT_DIM)
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
ATTENTIONS = ("attn1", "attn2")  # a transformer block's self-attention and cross-attention


def new_base(folder: str | Path, seed: int):
    """A randomly initialised base model (UNet, text encoder, tokenizer) written to `folder`; returns the folder's
    (unet, text_encoder, tokenizer)."""
    import diffusers
    import transformers
    folder = Path(folder)
    vocab = write_tokenizer(folder / "tokenizer", vocabulary(), MAX_TOKENS)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = diffusers.UNet2DConditionModel(**UNET)
        text = transformers.CLIPTextModel(transformers.CLIPTextConfig(
            vocab_size=vocab, bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1, **TEXT))
    save_folder(folder, unet, text)
    return unet, text, transformers.CLIPTokenizer.from_pretrained(folder / "tokenizer")


def save_folder(folder: str | Path, unet, text_encoder, *, dtype: torch.dtype = torch.float32,
                tokenizer_from: str | Path | None = None) -> Path:
    """A diffusers folder (no VAE: pixel space) with AnimateDiff's DDIM scheduler; `tokenizer_from` copies a
    tokenizer folder in."""
    import shutil
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if tokenizer_from is not None and Path(tokenizer_from).resolve() != (folder / "tokenizer").resolve():
        shutil.copytree(tokenizer_from, folder / "tokenizer", dirs_exist_ok=True)
    for name, module in (("unet", unet), ("text_encoder", text_encoder)):
        copy.deepcopy(module).to(dtype).save_pretrained(folder / name)
    _, sched = scheduler_config("sd15", "ddim")
    (folder / "scheduler").mkdir(exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps({"_class_name": "DDIMScheduler", **sched}))
    index = {"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
             "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
             "scheduler": ["diffusers", "DDIMScheduler"], "vae": [None, None], "safety_checker": [None, None],
             "feature_extractor": [None, None], "requires_safety_checker": False}
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    return folder


def attention_linears(unet, attentions: tuple[str, ...] = ATTENTIONS) -> dict[str, torch.nn.Linear]:
    """{name: Linear} of the attention projections (LORA_TARGETS) of a diffusers UNet's transformer blocks, in
    registration order. attentions: which of them, "attn1" (self-attention) and / or "attn2" (cross-attention to
    the text)."""
    unknown = set(attentions) - set(ATTENTIONS)
    if unknown or not attentions:
        raise ConfigError(f"attentions={attentions!r}: each one must be one of {ATTENTIONS}")
    linears = {name: m for name, m in unet.named_modules()
               if isinstance(m, torch.nn.Linear) and any(name.endswith("." + t) for t in LORA_TARGETS)
               and any(f".{a}." in name for a in attentions)}
    if not linears:
        raise ConfigError(f"the UNet has no {'/'.join(attentions)} projections to put a LoRA on")
    return linears


def peft_state_dict(loras) -> dict[str, torch.Tensor]:
    """diffusers' peft layout of {module name: LoRAWeight}: `<module>.lora_A.weight` (down), `.lora_B.weight` (up)."""
    out = {}
    for name, lora in loras.items():
        out[f"{name}.lora_A.weight"] = lora.down.detach().clone().contiguous()
        out[f"{name}.lora_B.weight"] = lora.up.detach().clone().contiguous()
    return out


def train_images(unet, text_encoder, tokenizer, images: np.ndarray, captions: list[str], *, steps: int, batch: int,
                 lr: float, seed: int, mode: str = "base", lora_rank: int = 16,
                 lora_attentions: tuple[str, ...] = ATTENTIONS, ema: float = 0.999,
                 caption_dropout: float = 0.1, warmup: int = 100, desc: str = "training", device: str = "cpu",
                 resume: Path | None = None, save_every: int = 200):
    """Train on (n, SIZE, SIZE, 3) uint8 `images` with their `captions`. mode: "base" (UNet and text encoder),
    "finetune" (the UNet), "lora" (a LoRA on the projections of the UNet's `lora_attentions`). Returns the EMA copies
    (unet, text_encoder) for base / finetune, or the LoRA state dict for lora; the losses per step as a list; the
    seconds spent training (over every sitting of a resumed run).
    resume: a file for the run's state (weights, EMA, optimizer, generator, losses), written atomically every
    `save_every` steps and continued from when it exists; a resumed run makes the same updates as an unbroken one.
    Every random draw comes from one CPU generator, so `device` changes the arithmetic, not the draws."""
    if mode not in ("base", "finetune", "lora"):
        raise ConfigError(f"mode {mode!r} is not base, finetune or lora")
    if len(images) != len(captions) or len(images) == 0:
        raise ConfigError(f"{len(images)} images but {len(captions)} captions")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1  # (n, 3, h, w) in [-1, 1]
    tokens = tokenizer(list(captions) + [""], padding="max_length", max_length=tokenizer.model_max_length,
                       truncation=True, return_tensors="pt").input_ids  # (n + 1, t): the last one is empty
    empty = len(captions)
    unet.requires_grad_(mode == "finetune" or mode == "base").train()
    text_encoder.requires_grad_(mode == "base").train(mode == "base")
    linears = attention_linears(unet, lora_attentions) if mode == "lora" else {}
    loras = parametrize_loras(linears, lora_rank, seed)  # motion_core's LoRA, on the image UNet's attention
    params = [p for m in (unet, text_encoder) for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)
    averaged = [p.detach().clone() for p in params]
    alphas = alphas_cumprod(TrainConfig()).to(device)  # AnimateDiff's betas, the motion trainer's default
    unet.to(device)
    text_encoder.to(device)
    losses, first, seconds, started = [], 0, 0.0, time.perf_counter()
    if resume is not None and Path(resume).is_file():
        state = torch.load(resume, map_location=device, weights_only=True)
        with torch.no_grad():
            for p, saved, avg, saved_avg in zip(params, state["params"], averaged, state["averaged"]):
                p.copy_(saved)
                avg.copy_(saved_avg)
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        first, losses, seconds = int(state["step"]), state["losses"].tolist(), float(state["seconds"])
        print(f"{desc}: resumed at step {first} from {resume}", flush=True)
    bar = tqdm(range(first, steps), initial=first, total=steps, desc=desc, unit="step", dynamic_ncols=True)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / warmup)
        index = torch.randint(len(images), (batch,), generator=generator)
        ids = tokens[index].clone()
        drop = torch.rand(batch, generator=generator) < caption_dropout
        ids[drop] = tokens[empty]
        x0 = pixels[index].to(device)
        t = torch.randint(0, 1000, (batch,), generator=generator)
        noise = torch.randn(x0.shape, generator=generator).to(device)
        a = alphas[t.to(device)].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        with torch.set_grad_enabled(mode == "base"):
            text = text_encoder(ids.to(device))[0]
        loss = F.mse_loss(unet(xt, t.to(device), text).sample, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        decay = min(ema, (1 + step) / (10 + step))  # warm-started EMA
        with torch.no_grad():
            for avg, p in zip(averaged, params):
                avg.lerp_(p.detach(), 1 - decay)
        losses.append(float(loss.detach()))
        if step % 10 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}", refresh=False)
        if resume is not None and ((step + 1) % save_every == 0 or step + 1 == steps):
            state = {"step": step + 1, "params": [p.detach() for p in params], "averaged": averaged,
                     "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
                     "losses": torch.tensor(losses, dtype=torch.float64),
                     "seconds": seconds + time.perf_counter() - started}
            atomic_write(resume, lambda tmp: torch.save(state, tmp))
    with torch.no_grad():
        for avg, p in zip(averaged, params):
            p.copy_(avg)
    unet.eval().requires_grad_(False).cpu()
    text_encoder.eval().requires_grad_(False).cpu()
    if mode == "lora":
        state = peft_state_dict(loras)
        unparametrize_loras(linears)
        return state, losses, seconds + time.perf_counter() - started
    return (unet, text_encoder), losses, seconds + time.perf_counter() - started
