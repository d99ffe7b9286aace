"""Decode a Genome into a U-shaped EMONAS-Net, with either cell (CELLS).

`cell="emonas"` is the authors' network (network_emonas.py). `cell="residual"` is this
project's variant, drawn here:

    level 0:  cell(in_ch → F) ─────────────────────────────── skip ──► cell(2F → F) → 1×1×1 → logits
                 │ down (strided conv)                                     ▲ up (transposed conv)
    level 1:  cell(2F) ───────────────────────────── skip ──► cell(4F → 2F)
                 │                                                 ▲
                ...                 bottleneck cell(2^n_c · F)    ...

n_c encoder cells, one bottleneck cell and n_c decoder cells: 2·n_c + 1 copies of the same cell
(one genome). Filters double at every lower level. Downsampling is a learned strided
convolution (kernel = stride), upsampling its transpose, both with the plan's per-axis strides
so anisotropic data keep their thick axis. Skips are concatenated, then the decoder cell's
1×1×1 projection brings 2F back to F.

`cell="residual_light"` is the same network with its full-resolution level made plain: the level-0
encoder cell becomes two conv-IN-LeakyReLU layers (in_ch → F → F) and the level-0 decoder cell two
more (2F → F → F), kernel 3 along the axes level 0 pools and 1 along the axes it keeps (3×3×1 on
ACDC's thick-sliced stacks, 3×3×3 on isotropic data, nnU-Net's rule for a first level), and the
genome's cell runs from level 1 down. Why: on ACDC every genome of the residual space cost ~23-25 k
MACs per parameter and ~5× the step of a standard network of its size, because two of its five cells
run at full resolution; at a CPU-clock retrain budget that is fewer steps (docs/studies/acdc.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from medseg_nas.space.cell import Cell
from medseg_nas.space.genome import Genome
from medseg_nas.space.network_emonas import EmonasNet
from medseg_nas.space.ops import conv_norm_act
from medseg_nas.space.plan import NetworkPlan, level_layout

# "emonas": the authors' cell and macro structure (EMONASArch.py); "residual": this project's
# variant (projection + residual + mean of leaves, strided-conv down, concatenated skips);
# "residual_light": residual with a plain (two-conv) full-resolution level, the cell from level 1 down
CELLS: tuple[str, ...] = ("emonas", "residual", "residual_light")
# the cell of run directories, checkpoints and exports written before `space.cell` existed
LEGACY_CELL = "residual"


def plain_block(cin: int, cout: int, stride) -> nn.Sequential:
    """Two conv-IN-LeakyReLU layers, kernel 3 along the axes `stride` pools and 1 along the others."""
    kernel = tuple(3 if s > 1 else 1 for s in stride)
    return nn.Sequential(conv_norm_act(cin, cout, kernel), conv_norm_act(cout, cout, kernel))


class EMONASNet(nn.Module):
    def __init__(self, genome: Genome, in_channels: int, n_classes: int, plan: NetworkPlan | None = None,
                 light_full_res: bool = False) -> None:
        super().__init__()
        self.genome = genome
        self.strides, widths = level_layout(genome.n_c, genome.filters, plan)

        def block(cin: int, level: int) -> nn.Module:  # the genome's cell, or the light layout's plain level 0
            if light_full_res and level == 0:
                return plain_block(cin, widths[0], self.strides[0])
            return Cell(genome, cin, widths[level])

        self.encoder = nn.ModuleList()
        self.down = nn.ModuleList()
        cin = in_channels
        for level in range(genome.n_c):
            self.encoder.append(block(cin, level))
            stride = self.strides[level]
            self.down.append(
                nn.Sequential(
                    nn.Conv3d(widths[level], widths[level + 1], stride, stride=stride, bias=False),
                    nn.InstanceNorm3d(widths[level + 1], affine=True),
                    nn.LeakyReLU(0.01, inplace=True),
                )
            )
            cin = widths[level + 1]
        self.bottleneck = Cell(genome, widths[-1], widths[-1])
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for level in reversed(range(genome.n_c)):
            stride = self.strides[level]
            self.up.append(nn.ConvTranspose3d(widths[level + 1], widths[level], stride, stride=stride, bias=False))
            self.decoder.append(block(2 * widths[level], level))
        self.head = nn.Conv3d(widths[0], n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for cell, down in zip(self.encoder, self.down):
            x = cell(x)
            skips.append(x)
            x = down(x)
        x = self.bottleneck(x)
        for up, cell in zip(self.up, self.decoder):
            x = cell(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)


def build_network(
    genome: Genome, in_channels: int, n_classes: int, plan: NetworkPlan | None = None, cell: str = "residual"
) -> nn.Module:
    """The trainable network for `genome` built with `cell` (one of CELLS); patch sizes must be
    multiples of plan.divisor(n_c)."""
    if cell in ("residual", "residual_light"):
        return EMONASNet(genome, in_channels, n_classes, plan, light_full_res=cell == "residual_light")
    if cell == "emonas":
        return EmonasNet(genome, in_channels, n_classes, plan)
    raise ValueError(f"unknown cell {cell!r}; expected one of {', '.join(CELLS)}")


def count_parameters(
    genome: Genome, in_channels: int, n_classes: int, plan: NetworkPlan | None = None, cell: str = "residual"
) -> int:
    """Exact trainable-parameter count, built on the meta device (no memory, ~ms)."""
    with torch.device("meta"):
        net = build_network(genome, in_channels, n_classes, plan, cell)
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


@dataclass(frozen=True)
class NetworkSpec:
    """Everything besides the genome that decides the network: input channels, classes, the stride
    plan and the cell. One value instead of four arguments through every build and count."""

    in_channels: int = 1
    n_classes: int = 2
    plan: NetworkPlan = field(default_factory=NetworkPlan)
    cell: str = "residual"

    @classmethod
    def of(cls, data_plan, cell: str = "residual") -> NetworkSpec:
        """The spec of a data plan (`.in_channels`, `.n_classes`, `.network_plan`) and a cell."""
        return cls(int(data_plan.in_channels), int(data_plan.n_classes), data_plan.network_plan, cell)

    def build(self, genome: Genome) -> nn.Module:
        return build_network(genome, self.in_channels, self.n_classes, self.plan, self.cell)

    def n_params(self, genome: Genome) -> int:
        return count_parameters(genome, self.in_channels, self.n_classes, self.plan, self.cell)
