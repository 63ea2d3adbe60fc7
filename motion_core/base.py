"""The image model a motion module animates: UNet, VAE, text encoder(s) and tokenizer(s) from diffusers.

`load_base(path)` reads a diffusers folder (`model_index.json` with `unet/`, `vae/`, `text_encoder/`, `tokenizer/`,
and for SDXL `text_encoder_2/`, `tokenizer_2/`; a folder without `vae/` is a pixel-space model, like the embedded
demo's) or a single-file SD1.5 / SDXL checkpoint (`.safetensors` / `.ckpt`)
through diffusers' single-file loading. A single file holds weights only: the components' configs and the CLIP
tokenizer come from `config=` (a diffusers folder of the same family, weights not needed) or, failing that, from the
Hugging Face cache, offline. diffusers and transformers are imported only here, and only when called.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointNotFoundError, ConfigError

SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
HUB_CONFIGS = {"sd15": "stable-diffusion-v1-5/stable-diffusion-v1-5",
               "sdxl": "stabilityai/stable-diffusion-xl-base-1.0"}


@dataclass
class BaseModel:
    unet: Any  # diffusers UNet2DConditionModel
    vae: Any  # diffusers AutoencoderKL (or any module with .encode / .decode and config.scaling_factor); None: the
    # UNet works in pixel space (3 channels, [-1, 1]), as the embedded demo's tiny models do
    text_encoder: Any  # transformers CLIPTextModel: token ids (b, 77) -> hidden states (b, 77, d)
    tokenizer: Any  # transformers CLIPTokenizer
    family: str  # "sd15" or "sdxl"
    text_encoder_2: Any = None  # SDXL: CLIPTextModelWithProjection
    tokenizer_2: Any = None
    scheduler_config: dict = field(default_factory=dict)  # the folder's own scheduler config (informational)
    source: str = ""

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def scale_factor(self) -> int:
        """Pixels per latent pixel: 8 for SD's VAE (2 ** (levels - 1)), 1 for a pixel-space model (no VAE)."""
        return 1 if self.vae is None else 2 ** (len(self.vae.config.block_out_channels) - 1)

    @torch.no_grad()
    def encode_prompt(self, prompts: list[str]) -> tuple[torch.Tensor, dict | None]:
        """Text embeddings (b, 77, d) for `prompts`, and for SDXL the pooled embeddings {"text_embeds": (b, 1280)}.

        SD1.5: the text encoder's last hidden state, as diffusers' pipelines compute it. SDXL: both encoders'
        penultimate hidden states concatenated, pooled output of the second."""
        if self.family == "sd15":
            return self.text_encoder(self._tokens(self.tokenizer, prompts))[0].to(self.dtype), None
        states, pooled = [], None
        for tokenizer, encoder in ((self.tokenizer, self.text_encoder), (self.tokenizer_2, self.text_encoder_2)):
            out = encoder(self._tokens(tokenizer, prompts), output_hidden_states=True)
            pooled = out[0]
            states.append(out.hidden_states[-2])
        return torch.cat(states, dim=-1).to(self.dtype), {"text_embeds": pooled.to(self.dtype)}

    def _tokens(self, tokenizer, prompts: list[str]) -> torch.Tensor:
        ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids
        return ids.to(self.text_encoder.device)

    def to(self, device=None, dtype=None) -> "BaseModel":
        args = {k: v for k, v in (("device", device), ("dtype", dtype)) if v is not None}
        for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
            module = getattr(self, name)
            if module is not None and args:
                module.to(**args)
        return self


def _require(package: str):
    try:
        return __import__(package)
    except ImportError:
        raise ConfigError(f"loading an image model needs {package}: pip install 'motion-core[pipeline]' "
                          f"(or pip install {package})") from None


def family_of(unet) -> str:
    return "sdxl" if len(unet.config.block_out_channels) == 3 else "sd15"


def load_base(path: str | Path, *, dtype: torch.dtype = torch.float32, config: str | Path | None = None,
              device: str | torch.device = "cpu") -> BaseModel:
    """Load a diffusers folder or a single-file SD1.5 / SDXL checkpoint (see the module docstring)."""
    _require("diffusers")
    _require("transformers")
    path = Path(path)
    if not path.exists():
        raise CheckpointNotFoundError(f"{path} does not exist: pass a diffusers model folder or a single-file "
                                      "SD1.5 / SDXL checkpoint (.safetensors / .ckpt)")
    if path.is_dir():
        base = _load_folder(path, dtype)
    elif path.suffix.lower() in SINGLE_FILE_SUFFIXES:
        base = _load_single_file(path, dtype, config)
    else:
        raise ConfigError(f"{path} is neither a diffusers folder nor a checkpoint file ({', '.join(SINGLE_FILE_SUFFIXES)})")
    base.source = str(path)
    for module in (base.unet, base.vae, base.text_encoder, base.text_encoder_2):
        if module is not None:
            module.requires_grad_(False).eval()
    return base if torch.device(device) == base.device else base.to(device=device)


def _load_folder(path: Path, dtype: torch.dtype) -> BaseModel:
    import diffusers
    import transformers
    if not (path / "model_index.json").is_file() or not (path / "unet").is_dir():
        raise ConfigError(f"{path} is not a diffusers model folder (no model_index.json and unet/): pass a folder "
                          "saved by diffusers' save_pretrained, or a single-file checkpoint")
    unet = diffusers.UNet2DConditionModel.from_pretrained(path, subfolder="unet", torch_dtype=dtype)
    family = family_of(unet)
    vae = diffusers.AutoencoderKL.from_pretrained(path, subfolder="vae", torch_dtype=dtype) \
        if (path / "vae").is_dir() else None  # pixel space
    text_encoder = transformers.CLIPTextModel.from_pretrained(path, subfolder="text_encoder", torch_dtype=dtype)
    tokenizer = transformers.CLIPTokenizer.from_pretrained(path, subfolder="tokenizer")
    extra = {}
    if family == "sdxl":
        extra["text_encoder_2"] = transformers.CLIPTextModelWithProjection.from_pretrained(
            path, subfolder="text_encoder_2", torch_dtype=dtype)
        extra["tokenizer_2"] = transformers.CLIPTokenizer.from_pretrained(path, subfolder="tokenizer_2")
    scheduler_config = {}
    scheduler_file = path / "scheduler" / "scheduler_config.json"
    if scheduler_file.is_file():
        import json
        scheduler_config = json.loads(scheduler_file.read_text())
    return BaseModel(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, family=family,
                     scheduler_config=scheduler_config, **extra)


def family_from_keys(keys) -> str | None:
    """SD1.5 or SDXL from an image model's key names (a full checkpoint or a bare UNet); None when neither."""
    keys = list(keys)
    if any(k.endswith("label_emb.0.0.weight") or k.startswith("conditioner.embedders.1") for k in keys):
        return "sdxl"
    if any(".input_blocks.11." in k or k.startswith("input_blocks.11.") for k in keys):
        return "sd15"
    return None


def _sniff_family(path: Path) -> str:
    from safetensors import safe_open

    from .formats.files import read_checkpoint, sniff
    if sniff(path) == "safetensors":
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
    else:  # a pickle: read here first with weights_only, so a file that would run code is refused before diffusers
        keys = list(read_checkpoint(path).state_dict)
    family = family_from_keys(keys)
    if family is not None:
        return family
    raise ConfigError(f"{path} is not a single-file SD1.5 or SDXL checkpoint (no model.diffusion_model.* keys); "
                      "a motion module goes to --motion-module, an image model to --model")


def _load_single_file(path: Path, dtype: torch.dtype, config: str | Path | None) -> BaseModel:
    import diffusers
    family = _sniff_family(path)
    cls = diffusers.StableDiffusionXLPipeline if family == "sdxl" else diffusers.StableDiffusionPipeline
    kwargs = dict(torch_dtype=dtype, local_files_only=True)
    if config is not None:
        if not (Path(config) / "model_index.json").is_file():
            raise ConfigError(f"--config {config} is not a diffusers folder (no model_index.json): pass a folder of "
                              f"the same family ({family}) holding its components' configs and tokenizer")
        kwargs["config"] = str(config)
    if family == "sd15":
        kwargs["safety_checker"] = None
    try:
        from diffusers.loaders.single_file_utils import SingleFileComponentError
    except ImportError:  # older diffusers
        SingleFileComponentError = ValueError
    try:
        pipe = cls.from_single_file(str(path), **kwargs)
    except SingleFileComponentError as e:
        raise ConfigError(f"{path}: {str(e).splitlines()[0]} (a checkpoint without its text encoder or VAE cannot "
                          "be animated alone: use a complete checkpoint or a diffusers folder)") from None
    except (OSError, ValueError) as e:
        if config is not None:
            raise ConfigError(f"diffusers could not build a {family} pipeline from {path} with the configs in "
                              f"{config}: {e}") from None
        raise ConfigError(f"{path} holds weights only, and the {family} configs and CLIP tokenizer were not found "
                          f"offline: pass --config DIR, a diffusers folder of the same family (weights not needed; "
                          f"e.g. a download of {HUB_CONFIGS[family]}), or put that model in the Hugging Face cache "
                          f"({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    extra = {"text_encoder_2": pipe.text_encoder_2, "tokenizer_2": pipe.tokenizer_2} if family == "sdxl" else {}
    return BaseModel(unet=pipe.unet, vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                     family=family, scheduler_config=dict(pipe.scheduler.config), **extra)
