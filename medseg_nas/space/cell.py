"""The "residual" cell (this project's variant; the authors' cell is cell_emonas.py), shared by every level.

Rule (documented because the paper leaves it implicit):

    x      = cell input, projected to the cell width C by a 1×1×1 conv + IN + LeakyReLU
             when its channel count differs (first encoder cell, decoder cells after the
             skip concatenation); otherwise used as is.
    node 1 = op1(x)
    node k = op_k(input_k), input_k ∈ {x, node 1, …, node k−1} from the genome (k = 2, 3, 4)
    out    = x + mean(leaf nodes)

Leaf nodes are the nodes no other node reads (node 4 is always one). Averaging the leaves
keeps the output scale independent of how many leaves the DAG has (summing k identical
identity leaves would multiply activations by k); the `x +` term is the residual path, so a
cell whose ops are all identities is still a well-defined (parameter-free) block.
"""

from __future__ import annotations

import torch
from torch import nn

from medseg_nas.space.genome import Genome
from medseg_nas.space.ops import conv_norm_act, make_op


def leaf_nodes(inputs: tuple[int, int, int]) -> list[int]:
    """Nodes (1..4) whose output no other node consumes."""
    consumed = set(inputs)
    return [n for n in range(1, 5) if n not in consumed]


class Cell(nn.Module):
    def __init__(self, genome: Genome, in_channels: int, channels: int) -> None:
        super().__init__()
        self.inputs = genome.inputs
        self.leaves = leaf_nodes(genome.inputs)
        self.project = conv_norm_act(in_channels, channels, (1, 1, 1)) if in_channels != channels else nn.Identity()
        self.nodes = nn.ModuleList(make_op(op, channels) for op in genome.ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.project(x)
        states = [x]  # states[0] = cell input, states[k] = node k
        states.append(self.nodes[0](x))
        for k in range(1, 4):
            states.append(self.nodes[k](states[self.inputs[k - 1]]))
        leaves = [states[n] for n in self.leaves]
        out = leaves[0]
        for leaf in leaves[1:]:
            out = out + leaf
        if len(leaves) > 1:
            out = out / len(leaves)
        return x + out
