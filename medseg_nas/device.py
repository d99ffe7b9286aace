"""`resolve_device`: the one reading of a device setting ("auto", "cpu", "cuda", "cuda:N").

The trainer and whole-file inference both resolve their device here, so "auto" means the same
everywhere and a CUDA request on a machine without CUDA is refused by name instead of failing
inside the first tensor copy.
"""

from __future__ import annotations

import torch

from medseg_nas.errors import ConfigError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """"auto"/""/None: CUDA when available, else the CPU; anything else as torch spells it."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {str(device)!r} requested but CUDA is not available on this machine")
    return dev
