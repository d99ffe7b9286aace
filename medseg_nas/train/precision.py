"""How a training step runs on a device: autocast or not, its dtype, and a GradScaler (policy:
bf16 autocast on CUDA where supported, else fp16 + GradScaler; fp32 on CPU, where bf16 conv3d
was measured ~40x slower than fp32)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Precision:
    """How a step runs: autocast on/off, its dtype, and whether a GradScaler scales the loss."""

    autocast: bool
    dtype: torch.dtype = torch.float32
    grad_scaler: bool = False


def precision_for(device: torch.device, amp: bool) -> Precision:
    """The module doc's policy: bf16 autocast on CUDA where supported, else fp16 + GradScaler;
    fp32 on CPU (bf16 conv3d on CPU measured ~40x slower than fp32)."""
    if device.type != "cuda" or not amp:
        return Precision(autocast=False)
    if torch.cuda.is_bf16_supported():
        return Precision(autocast=True, dtype=torch.bfloat16)
    return Precision(autocast=True, dtype=torch.float16, grad_scaler=True)
