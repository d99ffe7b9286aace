"""NSGA-II baseline: pymoo's NSGA2 driven through its ask/tell interface.

Every decision variable is a pymoo `Choice` over the indices of its values (SearchSpace.choices)
and NSGA-II runs with pymoo's mixed-variable mating and duplicate elimination: the op and input
variables are categorical, so integer SBX/polynomial mutation (which treat op 3 as "between" ops 2
and 4) did worse than random search on the analytic test problem. The initial population is the
shared initial design (initial_design.py; `DesignSampling`), the same start as every other
strategy's, so the smallest genome (search.seed_smallest) is trained first and takes part in
selection. A failed trial is told as f1 = (worst f1 seen) + 1
with its exact f2, i.e. dominated by every working network of the same size.

The state is plain JSON, never a pickle (a run directory may come from someone else): pymoo's
algorithm is a deterministic function of its seed and of the objectives told to it, so the
objectives of each told generation are saved and, on load, a fresh NSGA2 with the same seed
re-runs the same ask/tell sequence. Each replayed generation is checked against the history (and
the open batch against the saved one), so a pymoo whose operators changed is refused, not
silently continued on different genomes.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Callable

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2 as PymooNSGA2
from pymoo.core.mixed import MixedVariableDuplicateElimination, MixedVariableMating
from pymoo.core.problem import Problem
from pymoo.core.sampling import Sampling
from pymoo.core.variable import Choice
from pymoo.termination.max_gen import MaximumGenerationTermination

from medseg_nas.search.base import BaseStrategy, Objectives
from medseg_nas.search.initial_design import initial_design
from medseg_nas.space.genome import VARIABLES, Genome, SearchSpace


class GenomeProblem(Problem):
    """The search space as a pymoo problem: evaluated outside pymoo, by the runner."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        super().__init__(vars={v: Choice(options=list(range(len(space.choices(v))))) for v in VARIABLES}, n_obj=2)

    def decode(self, x: dict) -> Genome:
        return Genome.from_values([self.space.choices(v)[int(x[v])] for v in VARIABLES])

    def encode(self, genome: Genome) -> dict:
        """The pymoo variable dict (value indices) of a genome of this space."""
        x = {}
        for v, value in zip(VARIABLES, genome.values()):
            ch = self.space.choices(v)
            x[v] = next(i for i, c in enumerate(ch) if c == value or (isinstance(c, float) and abs(c - value) <= 1e-6 * c))
        return x


class DesignSampling(Sampling):
    """The initial population: the first `pop_size` genomes of the shared initial design
    (initial_design.py), the same start as every other strategy's, instead of pymoo's own sample."""

    def __init__(self, seed: int, seed_smallest: bool) -> None:
        super().__init__()
        self.seed, self.seed_smallest = int(seed), bool(seed_smallest)

    def _do(self, problem, n_samples, random_state=None, **kwargs):
        return [problem.encode(g) for g in initial_design(problem.space, self.seed, n_samples, self.seed_smallest)]


class NSGA2(BaseStrategy):
    name = "nsga2"

    def __init__(self, space: SearchSpace, f2_of: Callable[[Genome], float], seed: int, cfg, seed_smallest: bool = True) -> None:
        super().__init__(space, f2_of, seed, seed_smallest)
        self.pop_size = max(2, int(cfg.pop_size))
        self.problem = GenomeProblem(space)
        self.algorithm = PymooNSGA2(
            pop_size=self.pop_size,
            sampling=DesignSampling(self.seed, self.seed_smallest),
            mating=MixedVariableMating(eliminate_duplicates=MixedVariableDuplicateElimination()),
            eliminate_duplicates=MixedVariableDuplicateElimination(),
        )
        self.algorithm.setup(self.problem, termination=MaximumGenerationTermination(10**9), seed=self.seed, verbose=False)
        self.batch = None  # pymoo Population asked and not yet told back to pymoo
        self.batch_json: list[str] = []
        self.batch_F: list[list | None] = []  # per batch member: [f1, f2] (f1 None: failed) or None
        self.handed = 0
        self.generations = 0
        self.told_F: list[list[list[float]]] = []  # per told generation: the F given to pymoo (replayed on load)

    def _ask(self, n: int) -> list[Genome]:
        out: list[Genome] = []
        while len(out) < n:
            if self.batch is None or (self.handed >= len(self.batch_json) and all(f is not None for f in self.batch_F)):
                if self.batch is not None:
                    self._tell_pymoo()
                self.batch = self.algorithm.ask()
                self.batch_json = [self.problem.decode(x).to_json() for x in self.batch.get("X")]
                self.batch_F = [None] * len(self.batch_json)
                self.handed = 0
                # members already evaluated are answered at once (no trial)
                for k, js in enumerate(self.batch_json):
                    key = Genome.from_json(js).key()
                    if key in self.results:
                        F = self.results[key]
                        self.batch_F[k] = [None, self.f2_of(Genome.from_json(js))] if F is None else list(F)
            if self.handed >= len(self.batch_json):
                break  # waiting for this generation's results
            k = self.handed
            self.handed += 1
            if self.batch_F[k] is None:
                out.append(Genome.from_json(self.batch_json[k]))
        return out

    def _tell_pymoo(self) -> None:
        worst = max([f[0] for f in self.batch_F if f[0] is not None] + [h[1] for h in self.history if h[1] is not None] + [0.0])
        F = np.array([[worst + 1.0 if f[0] is None else f[0], f[1]] for f in self.batch_F], dtype=float)
        self.batch.set("F", F)
        self.algorithm.tell(infills=self.batch)
        self.told_F.append(F.tolist())
        self.generations += 1
        self.batch = None

    def _on_tell(self, genome: Genome, F: Objectives | None) -> None:
        js = genome.to_json()
        value = [None, self.f2_of(genome)] if F is None else list(F)
        for k, member in enumerate(self.batch_json):
            if member == js and self.batch_F[k] is None and k < self.handed:
                self.batch_F[k] = value
                break

    def stats(self) -> dict:
        s = super().stats()
        s.update(generation=self.generations)
        return s

    def _own_state(self) -> dict:
        return {
            "pop_size": self.pop_size,
            "told_F": self.told_F,
            "open_batch": self.batch is not None,
            "batch_json": self.batch_json,
            "batch_F": self.batch_F,
            "handed": self.handed,
            "generations": self.generations,
        }

    def _load_own_state(self, d: dict) -> None:
        """Rebuild pymoo's NSGA2 by replaying the saved generations (see the module docstring)."""
        if "told_F" not in d:
            raise ValueError("NSGA-II state has no 'told_F' (written by a version that pickled pymoo's state; "
                             "it is not loaded: start a new run directory)")
        self.pop_size = _count(d["pop_size"], "pop_size", minimum=2)
        told_F = [[_pair(f, "told_F") for f in _list(gen, "told_F")] for gen in _list(d["told_F"], "told_F")]
        fresh = type(self)(self.space, self.f2_of, self.seed, SimpleNamespace(pop_size=self.pop_size), self.seed_smallest)
        self.problem, self.algorithm = fresh.problem, fresh.algorithm
        outcomes: dict[str, list] = {}  # genome key → every [f1, f2] told for it ([None, None]: failed)
        for js, f1, f2 in self.history:
            outcomes.setdefault(Genome.from_json(js).key(), []).append([f1, f2])
        for g, F in enumerate(told_F):
            pop = self.algorithm.ask()
            genomes = [self.problem.decode(x) for x in pop.get("X")]
            if len(genomes) != len(F) or any(not self._agrees(gen, f, outcomes) for gen, f in zip(genomes, F)):
                raise ValueError(f"NSGA-II generation {g} does not replay to the recorded one (pymoo version changed?)")
            pop.set("F", np.array(F, dtype=float))
            self.algorithm.tell(infills=pop)
        self.told_F = told_F
        self.generations = len(told_F)
        self.batch_json = [Genome.from_json(js).to_json() for js in _list(d["batch_json"], "batch_json")]
        self.batch_F = [None if f is None else _pair(f, "batch_F", f1_may_be_none=True) for f in _list(d["batch_F"], "batch_F")]
        self.handed = _count(d["handed"], "handed")
        self.batch = None
        if d["open_batch"] is True:
            self.batch = self.algorithm.ask()
            if [self.problem.decode(x).to_json() for x in self.batch.get("X")] != self.batch_json:
                raise ValueError("NSGA-II's open batch does not replay to the saved one (pymoo version changed?)")
        if len(self.batch_F) != len(self.batch_json) or self.handed > len(self.batch_json):
            raise ValueError("NSGA-II batch bookkeeping is inconsistent (batch_json, batch_F, handed)")

    def _agrees(self, genome: Genome, F: list[float], outcomes: dict[str, list]) -> bool:
        """A replayed member and its recorded F match a tell in the history (a failed one: any f1)."""
        return any(o == F or (o[0] is None and F[1] == self.f2_of(genome)) for o in outcomes.get(genome.key(), []))


def _list(x, field: str) -> list:
    if not isinstance(x, list):
        raise ValueError(f"NSGA-II state field {field!r} must be a list, not {type(x).__name__}")
    return x


def _count(x, field: str, minimum: int = 0) -> int:
    if not isinstance(x, int) or isinstance(x, bool) or x < minimum:
        raise ValueError(f"NSGA-II state field {field!r} must be an integer >= {minimum}, not {x!r}")
    return x


def _pair(f, field: str, f1_may_be_none: bool = False) -> list:
    """[f1, f2] as finite floats (f1 may be None for a failed trial where allowed)."""
    def number(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and bool(np.isfinite(v))

    if not (isinstance(f, list) and len(f) == 2 and (number(f[0]) or (f1_may_be_none and f[0] is None)) and number(f[1])):
        raise ValueError(f"NSGA-II state field {field!r} holds {f!r}, not a pair of finite numbers")
    return [None if f[0] is None else float(f[0]), float(f[1])]
