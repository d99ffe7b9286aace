"""Random search: the baseline every strategy must beat for the same budget.

Its first DESIGN_SIZE asks are the shared initial design (initial_design.py: the smallest genome
first with `search.seed_smallest`, then a Latin hypercube), the same start as every other
strategy's, so comparisons measure the search and not the start; then uniform random genomes.
"""

from __future__ import annotations

from medseg_nas.search.base import BaseStrategy
from medseg_nas.search.initial_design import DESIGN_SIZE, initial_design
from medseg_nas.space.genome import Genome


class RandomSearch(BaseStrategy):
    name = "random"

    def _ask(self, n: int) -> list[Genome]:
        out: list[Genome] = []
        asked = {Genome.from_json(js).key() for js, _, _ in self.history} | {Genome.from_json(js).key() for js in self.pending}
        for g in initial_design(self.space, self.seed, DESIGN_SIZE, self.seed_smallest):
            if len(out) < n and g.key() not in asked:
                out.append(g)
        while len(out) < n:
            out.append(self.novel_random(avoid={g.key() for g in out}))
        return out
