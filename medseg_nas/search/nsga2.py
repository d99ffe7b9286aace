"""NSGA-II baseline: pymoo's NSGA2 driven through its ask/tell interface.

Every decision variable is a pymoo `Choice` over the indices of its values (SearchSpace.choices)
and NSGA-II runs with pymoo's mixed-variable sampling, mating and duplicate elimination: the op
and input variables are categorical, so integer SBX/polynomial mutation (which treat op 3 as
"between" ops 2 and 4) did worse than random search on the analytic test problem. With
`search.seed_smallest` the smallest genome of the space replaces the first sampled member of the
initial population (SmallestFirstSampling), so it is trained in the first batch like in every
other strategy and takes part in selection. A failed trial is told as f1 = (worst f1 seen) + 1 with its exact f2,
i.e. dominated by every working network of the same size. The pymoo algorithm object is saved
pickled (base64) inside the JSON state: it holds its own RNG, so a resumed search continues
exactly where it stopped (same pymoo version required; the runner's resume check keeps the rest).
"""

from __future__ import annotations

import base64
import pickle
from typing import Callable

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2 as PymooNSGA2
from pymoo.core.mixed import MixedVariableDuplicateElimination, MixedVariableMating, MixedVariableSampling
from pymoo.core.problem import Problem
from pymoo.core.sampling import Sampling
from pymoo.core.variable import Choice
from pymoo.termination.max_gen import MaximumGenerationTermination

from medseg_nas.search.base import BaseStrategy, Objectives
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


class SmallestFirstSampling(Sampling):
    """pymoo's mixed-variable sampling with its first member replaced by the smallest genome.

    Deterministic given pymoo's random state: the same draws as MixedVariableSampling, then one
    replacement (none when the smallest genome was drawn anyway)."""

    def __init__(self) -> None:
        super().__init__()
        self.mixed = MixedVariableSampling()

    def _do(self, problem, n_samples, random_state=None, **kwargs):
        X = self.mixed._do(problem, n_samples, random_state=random_state, **kwargs)
        smallest = problem.encode(Genome.smallest(problem.space))
        if n_samples > 0 and smallest not in X:
            X[0] = smallest
        return X


class NSGA2(BaseStrategy):
    name = "nsga2"

    def __init__(self, space: SearchSpace, f2_of: Callable[[Genome], float], seed: int, cfg, seed_smallest: bool = True) -> None:
        super().__init__(space, f2_of, seed, seed_smallest)
        self.pop_size = max(2, int(cfg.pop_size))
        self.problem = GenomeProblem(space)
        self.algorithm = PymooNSGA2(
            pop_size=self.pop_size,
            sampling=SmallestFirstSampling() if self.seed_smallest else MixedVariableSampling(),
            mating=MixedVariableMating(eliminate_duplicates=MixedVariableDuplicateElimination()),
            eliminate_duplicates=MixedVariableDuplicateElimination(),
        )
        self.algorithm.setup(self.problem, termination=MaximumGenerationTermination(10**9), seed=self.seed, verbose=False)
        self.batch = None  # pymoo Population asked and not yet told back to pymoo
        self.batch_json: list[str] = []
        self.batch_F: list[list | None] = []  # per batch member: [f1, f2] (f1 None: failed) or None
        self.handed = 0
        self.generations = 0

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
        blob = pickle.dumps((self.algorithm, self.batch))
        return {
            "pymoo": base64.b64encode(blob).decode("ascii"),
            "batch_json": self.batch_json,
            "batch_F": self.batch_F,
            "handed": self.handed,
            "generations": self.generations,
        }

    def _load_own_state(self, d: dict) -> None:
        self.algorithm, self.batch = pickle.loads(base64.b64decode(d["pymoo"]))
        self.problem = self.algorithm.problem
        self.batch_json = list(d["batch_json"])
        self.batch_F = [None if f is None else list(f) for f in d["batch_F"]]
        self.handed = int(d["handed"])
        self.generations = int(d["generations"])
