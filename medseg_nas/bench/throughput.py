"""The throughput benchmark's search: a fixed genome list both executors train, and one timed
`run_search` over it, apart from the command line that compares them (scripts/bench_throughput.py)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from medseg_nas.space import Genome, SearchSpace


# Config overrides that make every trial a whole trial, trained to train.epochs, with no clock: the
# benchmarks time (bench_throughput, bench_gpu) or drive by ask/tell (bench_search) whole trials, which a
# config's successive halving (whose rungs may not fit a benchmark's train.epochs) or wall-clock budget
# would cut. The search section is not in bench_search's cache key, so its caches stay valid.
WHOLE_TRIALS = ("search.fidelity.kind=none", "search.budget_hours=0")


def distinct_genomes(space: SearchSpace, n: int, seed: int) -> list[Genome]:
    """`n` different genomes drawn from `space` with `seed`, in the order drawn."""
    rng = np.random.default_rng(seed)
    genomes, seen = [], set()
    while len(genomes) < n:
        g = Genome.random(rng, space)
        if g.key() not in seen:
            seen.add(g.key())
            genomes.append(g)
    return genomes


class FixedList:
    """A 'strategy' that asks for a fixed list of genomes, in order (both executors get the same)."""

    name = "fixed"

    def __init__(self, genomes: list[Genome]) -> None:
        self.genomes = list(genomes)
        self.i = 0
        self.told = 0

    def ask(self, n: int) -> list[Genome]:
        out = self.genomes[self.i:self.i + n]
        self.i += len(out)
        return out

    def tell(self, genome, objectives) -> None:
        self.told += 1

    @property
    def done(self) -> bool:
        return self.i >= len(self.genomes)

    def state_dict(self) -> dict:
        return {"i": self.i, "told": self.told}

    def load_state_dict(self, d: dict) -> None:
        self.i, self.told = int(d["i"]), int(d["told"])


def timed_search(cfg, genomes, run_dir: Path, executor=None) -> dict:
    """The runner's search over `genomes` in a fresh `run_dir`: seconds and trials/hour."""
    from medseg_nas.nas.runner import run_search

    if run_dir.exists():
        shutil.rmtree(run_dir)
    t0 = time.perf_counter()
    s = run_search(cfg, run_dir, strategy=FixedList(genomes), budget=len(genomes), executor=executor, progress=False)
    wall = time.perf_counter() - t0
    return {"seconds": round(wall, 1), "trials": s.n_new, "failed": s.n_failed,
            "trials_per_hour": round(s.n_new / wall * 3600, 1), "runner_trials_per_hour": round(s.trials_per_hour, 1)}
