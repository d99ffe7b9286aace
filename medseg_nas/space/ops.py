"""The candidate operations of a cell node.

Axis convention: tensors are (B, C, X, Y, Z) after MONAI's RAS orientation, and the "1" of a
k×k×1 kernel is the last axis, Z — the slice axis of axial/short-axis stacks (ACDC, PROMISE12),
which is where data are thick-sliced. The 2D and pseudo-3D ops exist for that case.

Normalisation: InstanceNorm (affine) rather than BatchNorm. Search trials train on batches of
2 patches; BatchNorm's batch statistics are then noisy and its train/eval gap hurts sliding-
window validation, while InstanceNorm is batch-size independent (the nnU-Net default for 3D).
Activation: LeakyReLU(0.01), also as in nnU-Net. Every op keeps the spatial shape ("same"
padding) and the channel count.
"""

from __future__ import annotations

from torch import nn


def conv_norm_act(cin: int, cout: int, kernel: tuple[int, int, int], stride=1) -> nn.Sequential:
    pad = tuple(k // 2 for k in kernel)
    return nn.Sequential(
        nn.Conv3d(cin, cout, kernel, stride=stride, padding=pad, bias=False),
        nn.InstanceNorm3d(cout, affine=True),
        nn.LeakyReLU(0.01, inplace=True),
    )


class Pseudo3D(nn.Sequential):
    """k×k×1 in-plane then 1×1×k through-plane, each normalised and activated."""

    def __init__(self, channels: int, k: int) -> None:
        super().__init__(conv_norm_act(channels, channels, (k, k, 1)), conv_norm_act(channels, channels, (1, 1, k)))


def make_op(name: str, channels: int) -> nn.Module:
    """Build op `name` (one of genome.OPS) on `channels` channels."""
    if name == "identity":
        return nn.Identity()
    kind, k = name.split("_")
    k = int(k)
    if kind == "conv3d":
        return conv_norm_act(channels, channels, (k, k, k))
    if kind == "conv2d":
        return conv_norm_act(channels, channels, (k, k, 1))
    if kind == "p3d":
        return Pseudo3D(channels, k)
    raise ValueError(f"unknown op {name!r}")
