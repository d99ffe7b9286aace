"""A budgeted ask/tell loop without the runner: for benchmarks and tests on cheap objectives.

It follows the runner's rule — a genome asked again is told its known result and does not
count against the budget — so strategy comparisons made with it mean the same as real searches.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from medseg_nas.search.base import Objectives
from medseg_nas.search.stop import IDLE_ASKS_LIMIT, StopRule
from medseg_nas.space.genome import Genome


@dataclass
class Drive:
    order: list[Genome] = field(default_factory=list)  # distinct genomes in evaluation order
    results: dict[str, Any] = field(default_factory=dict)  # genome key → what `evaluate` returned
    strategy_seconds: float = 0.0  # time spent inside ask/tell (surrogates, bookkeeping)
    stop: str = "budget"  # "budget" | "strategy done" | "no new genomes"


def drive(
    strategy,
    evaluate: Callable[[Genome], Any],
    budget: int,
    objectives_of: Callable[[Any], Objectives | None] = lambda r: r,
    batch: int = 1,
    max_idle: int = IDLE_ASKS_LIMIT,
) -> Drive:
    """Ask `batch` at a time and tell results until `budget` distinct genomes are evaluated, or the
    runner's stuck rule (StopRule.stuck) stops it; no clock here."""
    d = Drive()
    idle = 0
    rule = StopRule(idle_asks=max_idle)
    while len(d.order) < budget:  # not rule.remaining: a budget <= 0 evaluates nothing here, not "no limit"
        if getattr(strategy, "done", False):
            d.stop = "strategy done"
            break
        if rule.stuck(idle):
            d.stop = "no new genomes"
            break
        t = time.perf_counter()
        asked = strategy.ask(batch)
        d.strategy_seconds += time.perf_counter() - t
        idle += 1
        for g in asked:
            k = g.key()
            if k not in d.results:
                idle = 0
                d.results[k] = evaluate(g)
                d.order.append(g)
            t = time.perf_counter()
            strategy.tell(g, objectives_of(d.results[k]))
            d.strategy_seconds += time.perf_counter() - t
    return d
