"""Precision rules, in one place: the dtype a motion module (and SparseCtrl) is stored in beside a host UNet, and the
mixed precision a training run uses. Pure functions of dtypes; the ComfyUI bridge and the trainer ask them.

A host UNet has a storage dtype (its weights) and a compute dtype (its activations): the same for fp32, fp16 and bf16
models; different under per-layer casting ("manual cast": fp8 weights, or fp16 / bf16 weights on a device that
computes them in another dtype), where each layer casts its weights to the compute dtype as it runs.
"""

from __future__ import annotations

import torch

from .errors import ConfigError

STORED_AS_IS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
FP8 = tuple(getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2") if hasattr(torch, n))
WEIGHT_DTYPES = {"auto": None, "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16,
                 **{n: getattr(torch, f"float8_{n[4:]}") for n in ("fp8_e4m3fn", "fp8_e5m2")
                    if hasattr(torch, f"float8_{n[4:]}")}}


def module_dtype(storage: torch.dtype, compute: torch.dtype | None = None,
                 requested: torch.dtype | None = None) -> torch.dtype:
    """The motion module's storage dtype beside a UNet stored in `storage` that computes in `compute` (None: the
    same): the UNet's storage dtype when it is fp16, bf16 or fp32; its compute dtype under fp8 (or any other)
    storage, so that fp8 flags never quantise a module (a few MB: fp8 would save little and cost its accuracy);
    `requested` (fp8 module weights asked for explicitly, or any dtype) wins."""
    if requested is not None:
        return requested
    if storage in STORED_AS_IS:
        return storage
    return compute if compute is not None and compute in STORED_AS_IS else torch.float32


def casts_weights(storage: torch.dtype, compute: torch.dtype | None) -> bool:
    """Whether layers stored in `storage` must cast their weights to `compute` as they run (manual cast)."""
    return compute is not None and compute != storage


def weight_dtype(name: str) -> torch.dtype | None:
    """A weight-dtype option ("auto", "fp16", "fp8_e4m3fn", ...) as a dtype (None for auto)."""
    if name not in WEIGHT_DTYPES:
        raise ConfigError(f"weight dtype {name!r} is not one of {', '.join(WEIGHT_DTYPES)} (this torch lacks the "
                          "fp8 ones if they are missing)")
    return WEIGHT_DTYPES[name]


def training_precision(compute: torch.dtype) -> str:
    """Accelerate's mixed precision for training beside a UNet computing in `compute`: bf16 autocast for a bf16
    UNet, fp16 autocast with loss scaling for an fp16 one, none (fp32) otherwise. The trained weights stay fp32."""
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(compute, "no")


def native_bf16(device: torch.device | str) -> bool:
    """Whether `device` computes bf16 natively: CUDA from compute capability 8 (Ampere); torch's own
    is_bf16_supported() also counts GPUs that only emulate it (T4, V100, RTX 20xx), slowly."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    with torch.cuda.device(device):
        return torch.cuda.is_bf16_supported(including_emulation=False)
