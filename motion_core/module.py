"""The AnimateDiff motion module, attribute names = the original checkpoint keys (so official files load strict).

One injection point (`VanillaTemporalModule`) takes a feature map `(b, c, f, h, w)` and returns it plus a temporal
transformer's output: every spatial position becomes a sequence over frames, `'b c f h w -> (b h w) f c'`, and
attends only along time. `MotionModule` holds every injection point of a UNet in the original's layout.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .config import MotionModuleConfig
from .errors import FrameCountError
from .guards import too_many_frames

class TorchOps:
    """The layer types a motion module is built from: torch's own. A host passes a namespace with the same three
    names whose classes take torch's arguments (ComfyUI: the `comfy.ops` classes core picks for a model, so its
    per-layer casting and partial loading reach the motion module); nothing else in the module depends on them."""
    Linear = nn.Linear
    LayerNorm = nn.LayerNorm
    GroupNorm = nn.GroupNorm


# Largest (batch x heads) handed to one SDPA call: bounds the (f x f) score tensors held at once and stays under
# CUDA's 65535 grid limit that peers hit at large batch x resolution.
MAX_ATTENTION_BATCH = 32768


def sinusoidal_pe(length: int, dim: int) -> torch.Tensor:
    """`pe[0, p, 2i] = sin(p * exp(-2i ln(10000) / dim))`, `pe[0, p, 2i+1] = cos(...)`: (1, length, dim), float32.

    Computed exactly as the original PositionalEncoding does, so a recomputed pe is bit-identical to a stored one.
    Always on the CPU, so it is the same bits whatever device the module is built on."""
    position = torch.arange(length, device="cpu").unsqueeze(1)
    div_term = torch.exp(torch.arange(0, dim, 2, device="cpu") * (-math.log(10000.0) / dim))
    pe = torch.zeros(1, length, dim, device="cpu")
    pe[0, :, 0::2] = torch.sin(position * div_term)
    pe[0, :, 1::2] = torch.cos(position * div_term)
    return pe


class PositionalEncoding(nn.Module):
    def __init__(self, dim: int, max_len: int):
        super().__init__()
        device = torch.empty(0).device  # the device of an enclosing `with torch.device(...)`, else the CPU
        # (1, max_len, dim), stored in checkpoints; on "meta" (building a module to load into) nothing to compute
        pe = torch.empty(1, max_len, dim) if device.type == "meta" else sinusoidal_pe(max_len, dim).to(device)
        self.register_buffer("pe", pe)


class VersatileAttention(nn.Module):
    """Self-attention over frames; the position encoding is added to its (normalised) input, not to the residual."""

    def __init__(self, dim: int, heads: int, pe_length: int, ops=TorchOps):
        super().__init__()
        self.heads = heads
        self.to_q = ops.Linear(dim, dim, bias=False)
        self.to_k = ops.Linear(dim, dim, bias=False)
        self.to_v = ops.Linear(dim, dim, bias=False)
        self.to_out = nn.ModuleList([ops.Linear(dim, dim)])  # key `to_out.0` (the original's dropout has no weights)
        self.pos_encoder = PositionalEncoding(dim, pe_length)

    def forward(self, x: torch.Tensor, scale=1.0) -> torch.Tensor:
        # x: (n, f, c) with n = b*h*w sequences of f frames
        frames, pe = x.shape[1], self.pos_encoder.pe
        if frames > pe.shape[1]:
            raise FrameCountError(too_many_frames(frames, pe.shape[1]))
        x = x + pe[:, :frames].to(x)  # (a partly loaded host may leave the buffer on its offload device)
        q, k, v = (rearrange(t, "n f (h d) -> n h f d", h=self.heads) for t in (self.to_q(x), self.to_k(x), self.to_v(x)))
        if isinstance(scale, torch.Tensor):  # per frame: (f,), each frame's keys by its own scale
            k = k * scale.to(k).view(1, 1, frames, 1)
        elif scale != 1.0:
            k = k * scale  # motion scale: sharper (>1) or flatter (<1) attention over frames
        chunk = max(1, MAX_ATTENTION_BATCH // self.heads)
        out = torch.cat([F.scaled_dot_product_attention(q[i:i + chunk], k[i:i + chunk], v[i:i + chunk])
                         for i in range(0, q.shape[0], chunk)]) if q.shape[0] > chunk \
            else F.scaled_dot_product_attention(q, k, v)
        return self.to_out[0](rearrange(out, "n h f d -> n f (h d)"))


class GEGLU(nn.Module):
    def __init__(self, dim: int, inner: int, ops=TorchOps):
        super().__init__()
        self.proj = ops.Linear(dim, 2 * inner)

    def forward(self, x):
        value, gate = self.proj(x).chunk(2, dim=-1)
        return F.gelu(gate).mul_(value)  # in place: one (n, 4C) temporary less


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int, ops=TorchOps):
        super().__init__()
        # keys `net.0.proj`, `net.2`; index 1 is the original's weightless dropout
        self.net = nn.ModuleList([GEGLU(dim, mult * dim, ops), nn.Identity(), ops.Linear(mult * dim, dim)])

    def forward(self, x):
        for layer in self.net:
            x = layer(x)
        return x


class TemporalTransformerBlock(nn.Module):
    def __init__(self, dim: int, config: MotionModuleConfig, ops=TorchOps):
        super().__init__()
        n = config.attention_blocks
        self.attention_blocks = nn.ModuleList([VersatileAttention(dim, config.heads, config.pe_length, ops)
                                               for _ in range(n)])
        self.norms = nn.ModuleList([ops.LayerNorm(dim) for _ in range(n)])
        self.ff = FeedForward(dim, config.ff_mult, ops)
        self.ff_norm = ops.LayerNorm(dim)

    def forward(self, x: torch.Tensor, scale: float | torch.Tensor = 1.0) -> torch.Tensor:
        for attention, norm in zip(self.attention_blocks, self.norms):
            x = x + attention(norm(x), scale)
        return x + self.ff(self.ff_norm(x))


class TemporalTransformer3DModel(nn.Module):
    def __init__(self, dim: int, config: MotionModuleConfig, ops=TorchOps):
        super().__init__()
        self.cross_frame_norm = config.cross_frame_norm
        self.norm = ops.GroupNorm(config.norm_groups, dim, eps=1e-6)
        self.proj_in = ops.Linear(dim, dim)
        self.transformer_blocks = nn.ModuleList([TemporalTransformerBlock(dim, config, ops)
                                                 for _ in range(config.transformer_blocks)])
        self.proj_out = ops.Linear(dim, dim)
        nn.init.zeros_(self.proj_out.weight)  # zero-initialised: a new module leaves the host's output unchanged
        nn.init.zeros_(self.proj_out.bias)

    def residual(self, x: torch.Tensor, frames: int, scale: float | torch.Tensor = 1.0) -> torch.Tensor:
        """What the module adds to a host's `((b f), c, h, w)` feature map (the layout UNets run in)."""
        h, w = x.shape[-2:]
        if self.cross_frame_norm:  # SDXL beta: statistics over (channel group, f, h, w)
            y = self.norm(rearrange(x, "(b f) c h w -> b c f h w", f=frames))
            tokens = rearrange(y, "b c f h w -> (b h w) f c")
        else:  # SD1.5 modules: statistics per frame
            tokens = rearrange(self.norm(x), "(b f) c h w -> (b h w) f c", f=frames)
        tokens = self.proj_in(tokens)
        for block in self.transformer_blocks:
            tokens = block(tokens, scale)
        tokens = self.proj_out(tokens)
        return rearrange(tokens, "(b h w) f c -> (b f) c h w", h=h, w=w)

    def forward(self, x: torch.Tensor, scale: float | torch.Tensor = 1.0) -> torch.Tensor:
        frames = x.shape[2]  # x: (b, c, f, h, w), the original calling convention
        flat = rearrange(x, "b c f h w -> (b f) c h w")
        return x + rearrange(self.residual(flat, frames, scale), "(b f) c h w -> b c f h w", f=frames)


class VanillaTemporalModule(nn.Module):
    """One injection point: `(b, c, f, h, w) -> (b, c, f, h, w)`, or `residual` on a host's `((b f), c, h, w)`."""

    def __init__(self, dim: int, config: MotionModuleConfig, ops=TorchOps):
        super().__init__()
        self.temporal_transformer = TemporalTransformer3DModel(dim, config, ops)

    def forward(self, x: torch.Tensor, scale: float | torch.Tensor = 1.0) -> torch.Tensor:
        return self.temporal_transformer(x, scale)

    def residual(self, x: torch.Tensor, frames: int, scale: float | torch.Tensor = 1.0) -> torch.Tensor:
        return self.temporal_transformer.residual(x, frames, scale)


class MotionBlock(nn.Module):
    def __init__(self, dim: int, count: int, config: MotionModuleConfig, ops=TorchOps):
        super().__init__()
        self.motion_modules = nn.ModuleList([VanillaTemporalModule(dim, config, ops) for _ in range(count)])


class MotionModule(nn.Module):
    """Every motion module of one UNet: `down_blocks.i`, `mid_block` (v2), `up_blocks.i`, as in the original files.
    operations: the layer types (`TorchOps`, or a host's); kept as `.operations`, so copies are built alike."""

    def __init__(self, config: MotionModuleConfig, *, operations=TorchOps):
        super().__init__()
        self.config, self.operations = config, operations
        layers = config.layers_per_block
        self.down_blocks = nn.ModuleList([MotionBlock(c, layers, config, operations) for c in config.channels])
        self.mid_block = MotionBlock(config.channels[-1], 1, config, operations) if config.mid_block else None
        self.up_blocks = nn.ModuleList([MotionBlock(c, layers + 1, config, operations)
                                        for c in reversed(config.channels)])

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def cast_module(module: nn.Module, dtype: torch.dtype | None = None, pe_dtype: torch.dtype | None = None,
                device: torch.device | str | None = None) -> nn.Module:
    """In place: weights to `dtype`, position encodings to `pe_dtype` (default: dtype), everything to `device`
    (None: leave as it is); a tensor already so is kept, not copied. Unlike nn.Module.to, the position encodings
    can keep the compute dtype when the weights are stored in another (fp8, say)."""
    pe_dtype = pe_dtype or dtype
    device = None if device is None else torch.device(device)
    for m in module.modules():
        for name, p in m.named_parameters(recurse=False):
            if (dtype is not None and p.dtype != dtype) or (device is not None and p.device != device):
                m.register_parameter(name, nn.Parameter(p.detach().to(device=device, dtype=dtype),
                                                        requires_grad=p.requires_grad))
        if isinstance(m, PositionalEncoding):
            m.pe = m.pe.to(device=device, dtype=pe_dtype)
    return module
