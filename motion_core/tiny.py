"""Tiny random image models in diffusers' folder layout, for demos and tests (seconds on a CPU, a few MB).

`build_tiny_base(folder, family)` writes a complete diffusers model folder (UNet, VAE, CLIP text encoder, a
character-level CLIP tokenizer, AnimateDiff's scheduler) with seeded random weights. Its shapes follow the original
AnimateDiff tiny test UNets (channels 32/64/64/64, 2 layers per level), so tiny motion modules
(`python -m motion_core create --channels 32,64,64,64 --heads 2`) fit it. It animates noise, not pictures: it
proves the plumbing end to end, nothing more.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .errors import ConfigError

TEXT_DIM = 32
SD15_UNET = dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64, 64, 64),
                 layers_per_block=2, cross_attention_dim=TEXT_DIM, attention_head_dim=2, norm_num_groups=32,
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
SDXL_UNET = dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64, 64), layers_per_block=2,
                 cross_attention_dim=2 * TEXT_DIM, attention_head_dim=2, norm_num_groups=32,
                 transformer_layers_per_block=(1, 1, 2),
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 addition_embed_type="text_time", addition_time_embed_dim=8,
                 projection_class_embeddings_input_dim=TEXT_DIM + 6 * 8)
VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16, 32, 32), layers_per_block=1,
           norm_num_groups=8, down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
           sample_size=64)


def bytes_to_unicode() -> dict[int, str]:
    """CLIP's byte -> printable character table (the alphabet its BPE works in)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = keep[:], 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(keep, map(chr, chars)))


def write_tokenizer(folder: Path, words: list[str] = (), max_length: int = 77) -> int:
    """A CLIPTokenizer folder: every byte (alone and word-final), one merge chain per word in `words` (so each is
    one token), and CLIP's start / end tokens; prompts pad / truncate to `max_length` tokens. Returns the
    vocabulary size."""
    alphabet = list(bytes_to_unicode().values())
    vocab = alphabet + [c + "</w>" for c in alphabet]
    merges: dict[str, None] = {}
    for _ in range(8):  # one word's merges can pre-empt another's ("r i" of "right" splits "triangle"): add the
        stuck = False   # merge each word still needs where BPE gets stuck, until every word is one token
        for word in words:
            pieces = _bpe(word, merges)
            while len(pieces) > 1:
                merges[f"{pieces[0]} {pieces[1]}"] = None
                pieces = [pieces[0] + pieces[1]] + pieces[2:]
                stuck = True
                vocab += [] if pieces[0] in vocab else [pieces[0]]
        if not stuck:
            break
    merges = list(merges)
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(m + "\n" for m in merges))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"model_max_length": max_length, "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
         "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "do_lower_case": True,
         "tokenizer_class": "CLIPTokenizer"}))
    return len(vocab)


def _bpe(word: str, merges: dict) -> list[str]:
    """CLIP's byte-pair encoding of one word with `merges` (in rank order)."""
    rank = {m: i for i, m in enumerate(merges)}
    pieces = list(word[:-1]) + [word[-1] + "</w>"]
    while len(pieces) > 1:
        pairs = [(rank.get(f"{a} {b}", len(rank)), i) for i, (a, b) in enumerate(zip(pieces, pieces[1:]))]
        best, i = min(pairs)
        if best == len(rank):
            break
        pieces = pieces[:i] + [pieces[i] + pieces[i + 1]] + pieces[i + 2:]
    return pieces


def build_tiny_base(folder: str | Path, family: str = "sd15", *, seed: int = 0, words: list[str] = ()) -> Path:
    """Write a tiny random diffusers model folder of `family` ("sd15" or "sdxl") to `folder`."""
    import diffusers
    import transformers
    if family not in ("sd15", "sdxl"):
        raise ConfigError(f"family {family!r} is not 'sd15' or 'sdxl'")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = write_tokenizer(folder / "tokenizer", list(words))
    torch.manual_seed(seed)
    unet = diffusers.UNet2DConditionModel(**(SDXL_UNET if family == "sdxl" else SD15_UNET))
    vae = diffusers.AutoencoderKL(**VAE)
    text = dict(vocab_size=vocab, hidden_size=TEXT_DIM, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=77, projection_dim=TEXT_DIM,
                bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1)
    components = {"unet": unet, "vae": vae,
                  "text_encoder": transformers.CLIPTextModel(transformers.CLIPTextConfig(**text))}
    index = {"_class_name": "StableDiffusionXLPipeline" if family == "sdxl" else "StableDiffusionPipeline",
             "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
             "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
             "scheduler": ["diffusers", "DDIMScheduler"]}
    if family == "sdxl":
        write_tokenizer(folder / "tokenizer_2", list(words))
        components["text_encoder_2"] = transformers.CLIPTextModelWithProjection(transformers.CLIPTextConfig(**text))
        index |= {"text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
                  "tokenizer_2": ["transformers", "CLIPTokenizer"]}
    else:
        index |= {"safety_checker": [None, None], "feature_extractor": [None, None], "requires_safety_checker": False}
    for name, module in components.items():
        module.save_pretrained(folder / name)
    from .schedule import scheduler_config
    _, sched = scheduler_config(family, "ddim")
    (folder / "scheduler").mkdir(exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps({"_class_name": "DDIMScheduler", **sched}))
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    return folder
