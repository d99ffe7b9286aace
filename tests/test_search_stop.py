"""One stop rule for the runner and the benchmark driver (search/stop.py)."""

import math

from medseg_nas.config import SearchConfig
from medseg_nas.search.driver import drive
from medseg_nas.search.stop import IDLE_ASKS_LIMIT, StopRule


def test_stop_rule_budget_clock_and_stuck():
    rule = StopRule.of(SearchConfig(budget_trials=10, budget_hours=0.5))
    assert rule == StopRule(10, 1800.0, IDLE_ASKS_LIMIT)
    assert rule.remaining(finished=7, in_flight=2) == 1 and rule.remaining(10) == 0
    assert not rule.time_up(1799.9) and rule.time_up(1800.0)
    no_limits = StopRule.of(SearchConfig(budget_trials=0, budget_hours=1.0))
    assert no_limits.remaining(10_000) == math.inf
    assert not StopRule(5).time_up(1e9)  # no clock
    assert not rule.stuck(IDLE_ASKS_LIMIT - 1) and rule.stuck(IDLE_ASKS_LIMIT)


class _Repeats:
    """A strategy that offers one genome forever."""

    done = False

    def __init__(self, genome):
        self.genome = genome

    def ask(self, n):
        return [self.genome]

    def tell(self, genome, objectives):
        pass


def test_driver_stops_stuck_after_the_rules_idle_asks():
    from medseg_nas.space import FULL_SPACE, Genome

    g = Genome.smallest(FULL_SPACE)
    d = drive(_Repeats(g), lambda x: (1.0, 1.0), budget=5, max_idle=7)
    assert d.stop == "no new genomes" and len(d.order) == 1


def test_driver_with_no_budget_evaluates_nothing():
    """The driver's budget is a count of genomes to evaluate: 0 means none (StopRule reads a
    trial budget <= 0 as "no limit", which the driver must not inherit)."""
    from medseg_nas.space import FULL_SPACE, Genome

    calls = []
    d = drive(_Repeats(Genome.smallest(FULL_SPACE)), lambda g: calls.append(g) or (1.0, 1.0), budget=0)
    assert d.order == [] and calls == [] and d.stop == "budget"
