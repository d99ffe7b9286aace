"""The candidate operations of a cell node, for both cells (see network.CELLS).

Axis convention: tensors are (B, C, X, Y, Z) after MONAI's RAS orientation, and the "1" of a
k×k×1 kernel is the last axis, Z — the slice axis of axial/short-axis stacks (ACDC, PROMISE12),
which is where data are thick-sliced. The 2D and pseudo-3D ops exist for that case.

Normalisation: InstanceNorm (affine) rather than BatchNorm. Search trials train on batches of
2 patches; BatchNorm's batch statistics are then noisy and its train/eval gap hurts sliding-
window validation, while InstanceNorm is batch-size independent (the nnU-Net default for 3D).
Activation: LeakyReLU(0.01), also as in nnU-Net. Every op keeps the spatial shape ("same"
padding) and the channel count. These post-activation ops (conv → IN → LeakyReLU) build the
"residual" cell; the authors' pre-activation ops (ReLU → conv → IN) at the end of this module
build the "emonas" cell.
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


# -- the authors' ops (cell "emonas", EMONASArch.py) ------------------------------------------------
# Pre-activation ReLU → conv → InstanceNorm, convs with bias, IN with scale and offset and
# tf.contrib.layers.instance_norm's epsilon. These may change the channel count: a down cell's
# ops that read the cell input (the max-pooled previous cell, C/2 channels) produce C.

_AUTHORS_IN_EPS = 1e-6  # tf.contrib.layers.instance_norm's default


class RepeatChannels(nn.Module):
    """The authors' identity: the input when widths match, else its channels repeated.

    EMONASArch.Identity concatenates `cout // cin` copies ([x, x, …]); when cin does not divide
    cout (only possible in the stem, with several input channels) the authors' graph would not
    build, and we repeat once more and keep the first `cout` channels.
    """

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.cin, self.cout = cin, cout
        self.reps = -(-cout // cin)

    def forward(self, x):
        if self.cin == self.cout:
            return x
        x = x.repeat(1, self.reps, 1, 1, 1)
        return x if self.reps * self.cin == self.cout else x[:, : self.cout]


def op_kernels(name: str) -> list[tuple[int, int, int]]:
    """The conv kernels of op `name`: one for conv3d/conv2d, k×k×1 then 1×1×k for p3d."""
    kind, k = name.split("_")
    k = int(k)
    if kind == "conv3d":
        return [(k, k, k)]
    if kind == "conv2d":
        return [(k, k, 1)]
    if kind == "p3d":
        return [(k, k, 1), (1, 1, k)]
    raise ValueError(f"unknown op {name!r}")


def make_preact_op(name: str, cin: int, cout: int, activate: bool = True) -> nn.Module:
    """The authors' op `name` from cin to cout channels: [ReLU →] conv(s) → one InstanceNorm.

    `activate=False` is the stem variant (EMONASArch.StemOPS: no activation on the raw image).
    """
    if name == "identity":
        return RepeatChannels(cin, cout)
    layers: list[nn.Module] = [nn.ReLU()] if activate else []  # not in place: other nodes read the input
    c = cin
    for kernel in op_kernels(name):
        layers.append(nn.Conv3d(c, cout, kernel, padding=tuple(k // 2 for k in kernel)))
        c = cout
    layers.append(nn.InstanceNorm3d(cout, affine=True, eps=_AUTHORS_IN_EPS))
    return nn.Sequential(*layers)
