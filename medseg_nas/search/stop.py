"""When an ask/tell loop stops: one rule for the runner and the benchmark driver, so a budget, a
clock and "stuck" mean the same in a search and in a strategy comparison."""

from __future__ import annotations

import math
from dataclasses import dataclass

# this many asks in a row answered only from what is already known, and the strategy has no new
# genome to offer: the loop is stuck
IDLE_ASKS_LIMIT = 10000


@dataclass(frozen=True)
class StopRule:
    """`budget_trials` finished trials (<= 0: no limit), `budget_seconds` of search (<= 0: no
    clock), `idle_asks` asks in a row that brought nothing new."""

    budget_trials: int = 0
    budget_seconds: float = 0.0
    idle_asks: int = IDLE_ASKS_LIMIT

    @classmethod
    def of(cls, search_cfg) -> StopRule:
        """The rule of a config's `search` section (budget_trials, budget_hours)."""
        return cls(int(search_cfg.budget_trials), float(search_cfg.budget_hours) * 3600.0)

    def remaining(self, finished: int, in_flight: int = 0) -> float:
        """Trials that may still be started (inf without a trial budget)."""
        return math.inf if self.budget_trials <= 0 else self.budget_trials - finished - in_flight

    def time_up(self, elapsed_s: float) -> bool:
        return self.budget_seconds > 0 and elapsed_s >= self.budget_seconds

    def stuck(self, idle: int) -> bool:
        return idle >= self.idle_asks
