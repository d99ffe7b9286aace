"""What every strategy shares: the ask/tell protocol, the evaluation history, resumable RNG.

The runner saves `state_dict()` right after every `tell` and, on resume, repeats the asks made
after it; so a strategy must be a deterministic function of (seed, state, tells) and its
state must capture everything — including genomes asked but not yet told (`pending`). The runner
keeps `history` and `pending` in the store's ask log and writes only the rest of the state to
strategy_state.json (nas/strategy_state.py).
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

import numpy as np

from medseg_nas.space.genome import Genome, SearchSpace

Objectives = tuple[float, float]


@runtime_checkable
class Strategy(Protocol):
    name: str

    def ask(self, n: int) -> list[Genome]: ...

    def tell(self, genome: Genome, objectives: Objectives | None) -> None: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, d: dict) -> None: ...

    @property
    def done(self) -> bool: ...


class BaseStrategy:
    """History, pending asks and a seeded RNG; subclasses implement `_ask` and `_on_tell`.

    `tell(genome, None)` is a failed trial (OOM, NaN, crash): it is recorded in the history with
    no objectives and each strategy treats it as dominated by everything (see subclasses).
    """

    name = "base"
    # attempts at drawing a genome not evaluated yet before accepting a repeat
    NOVELTY_TRIES = 50

    def __init__(self, space: SearchSpace, f2_of: Callable[[Genome], float], seed: int, seed_smallest: bool = True) -> None:
        self.space = space
        self.seed_smallest = bool(seed_smallest)  # search.seed_smallest: smallest genome in the first batch
        self.f2_of = f2_of
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.history: list[list] = []  # [genome json, f1 | None, f2 | None] in tell order
        self.results: dict[str, Objectives | None] = {}  # genome key → objectives (None: failed)
        self.pending: list[str] = []  # genome json asked and not told, in ask order

    # -- protocol ---------------------------------------------------------------------------
    def ask(self, n: int) -> list[Genome]:
        out = self._ask(max(int(n), 0))
        self.pending.extend(g.to_json() for g in out)
        return out

    def tell(self, genome: Genome, objectives: Objectives | None) -> None:
        js = genome.to_json()
        if js in self.pending:
            self.pending.remove(js)
        F = None if objectives is None else (float(objectives[0]), float(objectives[1]))
        self.history.append([js, None if F is None else F[0], None if F is None else F[1]])
        self.results[genome.key()] = F
        self._on_tell(genome, F)

    @property
    def done(self) -> bool:
        return False

    def stats(self) -> dict:
        n_failed = sum(1 for h in self.history if h[1] is None)
        return {"told": len(self.history), "failed": n_failed, "pending": len(self.pending)}

    def state_dict(self) -> dict:
        return {
            "name": self.name,
            "seed": self.seed,
            "rng": self.rng.bit_generator.state,
            "history": [list(h) for h in self.history],
            "pending": list(self.pending),
            "own": self._own_state(),
        }

    def load_state_dict(self, d: dict) -> None:
        if d.get("name") != self.name:
            raise ValueError(f"strategy state is for {d.get('name')!r}, not {self.name!r}")
        self.seed = int(d["seed"])
        self.rng.bit_generator.state = d["rng"]
        self.history = [list(h) for h in d["history"]]
        self.results = {
            Genome.from_json(js).key(): (None if f1 is None else (float(f1), float(f2))) for js, f1, f2 in self.history
        }
        self.pending = list(d["pending"])
        self._load_own_state(d["own"])

    # -- for subclasses ----------------------------------------------------------------------
    def _ask(self, n: int) -> list[Genome]:
        raise NotImplementedError

    def _on_tell(self, genome: Genome, F: Objectives | None) -> None:
        pass

    def _own_state(self) -> dict:
        return {}

    def _load_own_state(self, d: dict) -> None:
        pass

    # -- helpers -------------------------------------------------------------------------------
    def known(self, genome: Genome) -> bool:
        """Evaluated already, or asked and waiting for its result."""
        return genome.key() in self.results or genome.to_json() in self.pending

    def novel_random(self, avoid: set[str] = frozenset()) -> Genome:
        """A random genome not evaluated, pending or in `avoid` (keys), if one is found quickly."""
        g = Genome.random(self.rng, self.space)
        for _ in range(self.NOVELTY_TRIES):
            if not self.known(g) and g.key() not in avoid:
                return g
            g = Genome.random(self.rng, self.space)
        return g

    def evaluated(self, include_failed: bool = False) -> list[tuple[Genome, Objectives | None]]:
        """Distinct evaluated genomes with their objectives, in first-tell order."""
        seen, out = set(), []
        for js, f1, f2 in self.history:
            if js in seen or (f1 is None and not include_failed):
                continue
            seen.add(js)
            out.append((Genome.from_json(js), None if f1 is None else (f1, f2)))
        return out

