"""The trainer's CPU memory layout: InstanceNorm3d as `F.group_norm`, so channels_last_3d
tensors keep their layout. Shared by training and inference, which must run the same math.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GroupInstanceNorm3d(nn.Module):
    """InstanceNorm3d(affine=True) computed with `F.group_norm` (one group per channel).

    Mathematically identical, keeps channels_last_3d tensors in that layout (InstanceNorm3d
    reshapes and converts to the default layout), and has the same `weight`/`bias` keys.
    """

    def __init__(self, norm: nn.InstanceNorm3d) -> None:
        super().__init__()
        self.num_features = norm.num_features
        self.eps = norm.eps
        self.weight = norm.weight
        self.bias = norm.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, self.num_features, self.weight, self.bias, self.eps)


def swap_instance_norm(module: nn.Module) -> int:
    """Replace affine, stat-less InstanceNorm3d layers in place; returns how many."""
    n = 0
    for name, child in module.named_children():
        if isinstance(child, nn.InstanceNorm3d) and child.affine and not child.track_running_stats:
            setattr(module, name, GroupInstanceNorm3d(child))
            n += 1
        else:
            n += swap_instance_norm(child)
    return n
