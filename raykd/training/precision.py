"""Mixed precision for the worker loop: which autocast dtype a run uses, and the gradient scaler fp16 needs.

Master weights and optimizer state stay fp32 (autocast only lowers the precision of matmuls and the like
inside the forward pass); losses are computed in fp32 from the outputs (raykd.method.objective casts them).
`auto` is bf16 where the hardware runs it natively (a CUDA GPU with bf16, or a CPU with AVX512-BF16 or
AMX), else fp32: on this project's 2-core AVX512-BF16 machine bf16 made a student step 1.70x faster.
"""

from __future__ import annotations

import contextlib

import torch

CHOICES = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def native_bf16(device: torch.device) -> bool:
    """Does `device` run bf16 matmuls natively (CUDA bf16; CPU AVX512-BF16 or AMX, as torch reports it)?"""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def resolve(name: str, device: torch.device) -> str:
    """`auto` -> bf16 or fp32 for `device`; other names unchanged. Raises ValueError for an unknown name."""
    if name not in CHOICES:
        raise ValueError(f"precision {name!r} is not one of {', '.join(CHOICES)}")
    if name == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return name


def autocast(name: str, device: torch.device):
    """The forward pass's context: torch.autocast in the resolved dtype, or nothing for fp32."""
    dtype = DTYPES[resolve(name, device)]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(name: str, device: torch.device) -> torch.amp.GradScaler:
    """fp16 gradients underflow without loss scaling; bf16 and fp32 need none (a disabled scaler)."""
    return torch.amp.GradScaler(device.type, enabled=resolve(name, device) == "fp16")
