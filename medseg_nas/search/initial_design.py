"""The one initial design every strategy starts from, so that a comparison of strategies measures
the search and not the start (issue 27).

    design = [smallest genome] (search.seed_smallest, first, as the DMLS thesis seeds every method)
             + a Latin hypercube of DESIGN_SIZE genomes (SaMEA's start: the authors' lhsmdu sample
               decoded through uniform cumulative probabilities), less its last member when the
               smallest genome takes its place,
             then seeded random genomes if a strategy needs more; repeats dropped.

It depends on the space and `search.seed` only, never on the strategy: SaMEA's initial population
(N), DMLS's initial archive (`initial_archive_size`), NSGA-II's initial population (`pop_size`)
and random search's first asks are each the first k genomes of the same list, in the same order,
so any two strategies share their first min(k₁, k₂) trials exactly.
"""

from __future__ import annotations

import numpy as np

from medseg_nas.search.samea_rules import latin_hypercube_genomes
from medseg_nas.space.genome import Genome, SearchSpace

DESIGN_SIZE = 10  # the Latin hypercube's size (smallest genome included): the authors' N
RANDOM_TRIES = 50


def initial_design(space: SearchSpace, seed: int, n: int, seed_smallest: bool = True) -> list[Genome]:
    """The first `n` genomes of the shared design (see module)."""
    head = [Genome.smallest(space)] if seed_smallest else []
    # a hypercube of DESIGN_SIZE, its last member dropped for the smallest genome (as the authors'
    # size keeps one stratum per value of a 10-value variable: a hypercube of 9 would not)
    lhs = latin_hypercube_genomes(space, DESIGN_SIZE, int(seed))[: DESIGN_SIZE - len(head)]
    out, seen = [], set()
    for g in head + lhs:
        if g.key() not in seen:
            seen.add(g.key())
            out.append(g)
    rng = np.random.default_rng([int(seed), 27])  # its own stream: the strategies' RNGs stay theirs
    while len(out) < n:
        g = Genome.random(rng, space)
        for _ in range(RANDOM_TRIES):
            if g.key() not in seen:
                break
            g = Genome.random(rng, space)
        seen.add(g.key())
        out.append(g)
    return out[: max(int(n), 0)]
