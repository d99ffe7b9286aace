"""A cheap analytic 2-objective problem over real genomes, for strategy tests and smoke benchmarks.

Bigger kernels, more cells and filters and a learning rate near 1e-3 lower f1; they raise f2
(the log of a monotone stand-in for the parameter count), so the two objectives conflict like
Dice error and size do. Used by tests/test_search.py, tests/test_samea.py and
`scripts/bench_search.py --mode analytic`.
"""

from __future__ import annotations

import math

import numpy as np

from medseg_nas.search.archive import normalised_hypervolume
from medseg_nas.search.driver import drive as run_budget
from medseg_nas.space.genome import Genome, SearchSpace

_W = {"identity": 0, "conv3d_1": 1, "conv3d_3": 27, "conv3d_5": 125, "conv2d_3": 9, "conv2d_5": 25,
      "conv2d_7": 49, "p3d_3": 12, "p3d_5": 30, "p3d_7": 56}
_GAIN = {"identity": 0.0, "conv3d_1": 0.3, "conv3d_3": 1.6, "conv3d_5": 1.8, "conv2d_3": 1.0, "conv2d_5": 1.2,
         "conv2d_7": 1.25, "p3d_3": 1.5, "p3d_5": 1.65, "p3d_7": 1.7}


def f2(g: Genome) -> float:
    per_cell = sum(_W[o] + 1 for o in g.ops) * (2**g.n_f) ** 2
    return math.log(per_cell * sum(4**lvl for lvl in range(g.n_c + 1)) + 100)


def f1(g: Genome) -> float:
    depth = 1 + len(set(g.inputs))  # nodes chained rather than all reading the input
    q = sum(_GAIN[o] for o in g.ops) * (0.6 + 0.2 * g.n_c) * (0.7 + 0.1 * g.n_f) + 0.15 * depth
    return 1.0 / (1.0 + q) + 0.08 * abs(math.log10(g.lr) + 3.0)


def objectives(g: Genome) -> tuple[float, float]:
    return f1(g), f2(g)


SPACE = SearchSpace()
BOX = ((0.0, f2(Genome.smallest(SPACE))), (1.4, f2(Genome(ops=("conv3d_5",) * 4, n_c=4, n_f=5)) + 0.1))


def drive(strategy, budget: int, batch: int = 1, fail=lambda g: False) -> list[float]:
    """Ask/tell until `budget` distinct genomes are evaluated; returns hypervolume after each."""
    d = run_budget(strategy, lambda g: None if fail(g) else objectives(g), budget, batch=batch, max_idle=1000)
    hv, F = [], []
    for g in d.order:
        if d.results[g.key()] is not None:
            F.append(d.results[g.key()])
        hv.append(normalised_hypervolume(np.array(F).reshape(-1, 2), *BOX) if F else 0.0)
    return hv
