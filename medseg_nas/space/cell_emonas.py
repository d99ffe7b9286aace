"""The authors' EMONAS-Net cell (cell "emonas"), as built by EMONASArch.py in mariabaldeon/EMONAS.

    node 0 = cell input (C_in channels: C, or C/2 in a down cell, where it is the max-pooled
             previous cell)
    node 1 = op1(node 0)
    node k = op_k(node in_k), in_k ∈ {0, …, k−1} from the genome (k = 2, 3, 4)
    out    = node 1 + node 2 + node 3 + node 4

Every op is pre-activation ReLU → conv → InstanceNorm (ops.make_preact_op) and produces C
channels, so ops reading node 0 of a down cell widen it (the identity repeats channels). The
output is the SUM of all four nodes: no residual path, no averaging, every node counts
whether or not another node reads it (EMONASArch.frst_blck / downsampling_block /
upsampling_block: `Add()([node[1], node[2], node[3], node[4]])`).
"""

from __future__ import annotations

import torch
from torch import nn

from medseg_nas.space.genome import Genome
from medseg_nas.space.ops import make_preact_op


class EmonasCell(nn.Module):
    def __init__(self, genome: Genome, in_channels: int, channels: int) -> None:
        super().__init__()
        self.sources = (0, *genome.inputs)  # node k reads node sources[k-1]
        self.nodes = nn.ModuleList(
            make_preact_op(op, in_channels if src == 0 else channels, channels)
            for op, src in zip(genome.ops, self.sources)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states = [x]
        for op, src in zip(self.nodes, self.sources):
            states.append(op(states[src]))
        return states[1] + states[2] + states[3] + states[4]
