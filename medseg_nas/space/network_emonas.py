"""The authors' EMONAS-Net macro structure (cell "emonas"; EMONASArch.get_EMONAS).

    stem:     op1's convolution + IN, no activation, input → F channels
    level 0:  cell(F) ───────────────────────────────────── + ──► cell(F) → 1×1×1 conv → logits
                 │ max-pool                                    ▲ transposed conv 2F → F
    level 1:  cell(F → 2F) ─────────────────────── + ──► cell(2F)
                 │                                     ▲
                ...            bottleneck: max-pool, cell(2^n_c·F)

2·n_c + 1 cells (the first cell, n_c down cells of which the last is the bottleneck, n_c up
cells), filters doubling per level. Down = max-pool then a cell at double width; up =
transposed conv (kernel = stride, with bias) to the level's width, ADDED to the encoder cell
output of that level (no concatenation), then a cell. Head: 1×1×1 conv with bias. Weights are
initialised like the authors' Keras layers (he_uniform kernels, zero biases).

Deliberate differences, both forced by the rest of the pipeline:
- Pooling and up-sampling use the plan's per-axis strides (kernel = stride). On isotropic plans
  these are the authors' 2×2×2 everywhere; on thick-slice data (ACDC, PROMISE12) an axis that
  the plan does not pool keeps stride 1, as in the "residual" network.
- The head returns logits for every class including background (the trainer's softmax Dice+CE
  loss); the authors applied a sigmoid per foreground class. The structure is the same; the head
  has one more output channel than theirs (33 parameters at 32 filters).
"""

from __future__ import annotations

import torch
from torch import nn

from medseg_nas.space.cell_emonas import EmonasCell
from medseg_nas.space.genome import Genome
from medseg_nas.space.ops import make_preact_op
from medseg_nas.space.plan import NetworkPlan, level_layout


class EmonasNet(nn.Module):
    def __init__(self, genome: Genome, in_channels: int, n_classes: int, plan: NetworkPlan | None = None) -> None:
        super().__init__()
        self.genome = genome
        self.strides, widths = level_layout(genome.n_c, genome.filters, plan)
        self.stem = make_preact_op(genome.ops[0], in_channels, widths[0], activate=False)
        self.first = EmonasCell(genome, widths[0], widths[0])
        self.pool = nn.ModuleList(nn.MaxPool3d(s, stride=s) for s in self.strides)
        self.down = nn.ModuleList(EmonasCell(genome, widths[lv], widths[lv + 1]) for lv in range(genome.n_c))
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for level in reversed(range(genome.n_c)):
            stride = self.strides[level]
            self.up.append(nn.ConvTranspose3d(widths[level + 1], widths[level], stride, stride=stride))
            self.decoder.append(EmonasCell(genome, widths[level], widths[level]))
        self.head = nn.Conv3d(widths[0], n_classes, 1)
        self.apply(_he_uniform)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first(self.stem(x))
        skips = [x]
        for pool, cell in zip(self.pool, self.down):
            x = cell(pool(x))
            skips.append(x)
        skips.pop()  # the bottleneck's own output
        for up, cell in zip(self.up, self.decoder):
            x = cell(up(x) + skips.pop())
        return self.head(x)


def _he_uniform(m: nn.Module) -> None:
    """Keras 'he_uniform' (limit sqrt(6 / fan_in)) and zero biases, as the authors' layers.

    torch's fan_in of a ConvTranspose3d weight (in, out, k…) is out·k³, which is also what Keras
    computes for its Conv3DTranspose kernel (k…, out, in).
    """
    if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
        nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
        if m.bias is not None:
            nn.init.zeros_(m.bias)
