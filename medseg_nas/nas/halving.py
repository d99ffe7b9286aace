"""Successive halving of the trial budget for every strategy (`search.fidelity.kind: halving`).

Every genome the strategy asks is trained to the first rung (`search.fidelity.rungs`, epochs of
the trial budget, schedule spanning `train.epochs`); the runner then promotes trials one at a
time, asynchronously, and a promoted trial goes on training from its saved state
(train/checkpoint.py) to the next rung.

Promotion rule: multi-objective asynchronous successive halving (Schmucker, Donini, Perrone,
Zafar, Archambeau 2021, "Multi-objective asynchronous successive halving", arXiv:2106.12639;
Syne Tune's MOASHA). At rung r, of the n trials that finished it, the best floor(n / eta) by
NSGA-II ranking of (f1 at rung r, f2) — non-dominated sorting, then crowding distance within
the last front (pymoo, `search.samea_rules.best_n_nsga2`) — may go on; any of them not yet
promoted is promoted, best-ranked first, as soon as an executor slot is free (ASHA: a rung is
never waited for). A promotion that fails (NaN, OOM) keeps the trial at its lower rung.

What the strategies see: each genome's objectives at the *first* rung, told as soon as it is
reached — one rung for every genome, so SaMEA's forest, its neighbourhood comparisons and DMLS's
dominance tests compare like with like (a promoted genome's later, longer-trained f1 is lower
because it trained longer, not because it is better; telling it would bias every comparison
towards the genomes promoted so far). The store, front.json, the retrain pick and the report
use the result of the highest rung each trial reached, with that rung recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medseg_nas.config import Config, fidelity_rungs
from medseg_nas.trial_store import TrialStore
from medseg_nas.results import TrialStatus
from medseg_nas.search.samea_rules import best_n_nsga2


@dataclass(frozen=True)
class Promotion:
    """Trial `trial_id` goes on from rung `rung - 1` to rung `rung` (`epochs` epochs in all)."""

    trial_id: int
    rung: int
    epochs: int


@dataclass(frozen=True)
class Halving:
    """The rungs (epochs) and eta of a search; `Halving.of(cfg)` is None without halving."""

    rungs: tuple[int, ...]
    eta: int

    @classmethod
    def of(cls, cfg: Config) -> "Halving | None":
        fid = cfg.search.fidelity
        if fid.kind != "halving":
            return None
        return cls(tuple(fidelity_rungs(fid, cfg.train.epochs)), int(fid.eta))

    @property
    def top(self) -> int:
        return len(self.rungs) - 1

    def promotable(self, results: list[tuple[int, float, float]]) -> list[int]:
        """Trial ids among `results` (trial id, f1 at this rung, f2) allowed to go on, best first."""
        k = len(results) // self.eta
        if k < 1:
            return []
        F = np.array([[f1, f2] for _, f1, f2 in results], dtype=float)
        return [results[i][0] for i in best_n_nsga2(F, k)]

    def next_promotion(self, store: TrialStore, busy: set[int] = frozenset()) -> Promotion | None:
        """The next trial to promote, or None; `busy`: trials in flight (never promoted twice)."""
        rows = store.rung_rows()
        reached: dict[int, list[int]] = {}
        started = {(r.trial_id, r.rung) for r in rows}
        for r in rows:
            if r.status == TrialStatus.DONE and r.rung < self.top:
                reached.setdefault(r.rung, []).append(r.trial_id)
        if not reached:
            return None
        trials = {t.id: t for t in store.rows(TrialStatus.DONE)}
        f1_at = {(r.trial_id, r.rung): r.f1 for r in rows if r.status == TrialStatus.DONE}
        for rung in sorted(reached, reverse=True):  # finish the most trained trials first
            results = [(tid, f1_at[(tid, rung)], trials[tid].f2) for tid in reached[rung]
                       if tid in trials and trials[tid].f2 is not None and f1_at[(tid, rung)] is not None]
            for tid in self.promotable(results):
                if (tid, rung + 1) not in started and tid not in busy:
                    return Promotion(tid, rung + 1, self.rungs[rung + 1])
        return None

    def unfinished(self, store: TrialStore) -> list[Promotion]:
        """Promotions a killed session left running (rungs > 0): resumed from their saved state."""
        return [Promotion(r.trial_id, r.rung, r.epochs) for r in store.rung_rows(TrialStatus.RUNNING) if r.rung > 0]

