"""Random search: the baseline every strategy must beat for the same budget."""

from __future__ import annotations

from medseg_nas.search.base import BaseStrategy
from medseg_nas.space.genome import Genome


class RandomSearch(BaseStrategy):
    name = "random"

    def _ask(self, n: int) -> list[Genome]:
        out: list[Genome] = []
        for _ in range(n):
            out.append(self.novel_random(avoid={g.key() for g in out}))
        return out
