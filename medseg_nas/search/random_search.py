"""Random search: the baseline every strategy must beat for the same budget.

With `search.seed_smallest` its first batch starts with the smallest genome of the space, like
every other strategy's, so comparisons measure the search and not the start.
"""

from __future__ import annotations

from medseg_nas.search.base import BaseStrategy
from medseg_nas.space.genome import Genome


class RandomSearch(BaseStrategy):
    name = "random"

    def _ask(self, n: int) -> list[Genome]:
        out: list[Genome] = []
        if n > 0 and self.seed_smallest and not self.history and not self.pending:
            out.append(Genome.smallest(self.space))  # the first batch
        while len(out) < n:
            out.append(self.novel_random(avoid={g.key() for g in out}))
        return out
