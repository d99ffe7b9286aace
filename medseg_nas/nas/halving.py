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

`search.fidelity.promote: pickable` (opt-in; `all` is the published rule above): the number
promoted stays floor(n / eta) of all n trials at the rung, but they are ranked and chosen only
among the trials the retrain could pick — within `retrain.max_params` / `max_macs` /
`max_latency_ms` — whose validation Dice at that rung is above 0. Measured reason
(docs/studies/halving.md): with `all`, crowding distance always keeps the ends of the front, so
the untrained-looking identity network took a top-rung slot in 6 of 6 eta-9 searches and 11 of
28 slots went to networks above the 0.5 M cap the pick can never choose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medseg_nas.config import Config, fidelity_rungs
from medseg_nas.trial_store import TrialStore
from medseg_nas.results import TrialStatus, cost_caps, within_caps
from medseg_nas.search.samea_rules import best_n_nsga2


def pickable_ids(rung_rows, trials: dict, rung: int, caps: dict[str, float]) -> set[int]:
    """Ids of the `trials` ({id: TrialRow}) the retrain could pick — within `caps`
    (results.cost_caps) — whose validation Dice at `rung` is above 0: `promote: pickable`'s pool."""
    segments = {r.trial_id for r in rung_rows if r.rung == rung and r.status == TrialStatus.DONE and (r.val_dice or 0) > 0}
    return {tid for tid in segments if tid in trials and within_caps(trials[tid].cost, caps)}


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
    pickable_only: bool = False  # search.fidelity.promote == "pickable"
    caps: tuple[tuple[str, float], ...] = ()  # the retrain's cost caps (results.cost_caps), with it

    @classmethod
    def of(cls, cfg: Config) -> "Halving | None":
        fid = cfg.search.fidelity
        if fid.kind != "halving":
            return None
        pickable = fid.promote == "pickable"
        caps = tuple(sorted(cost_caps(cfg.retrain).items())) if pickable else ()
        return cls(tuple(fidelity_rungs(fid, cfg.train.epochs)), int(fid.eta), pickable, caps)

    @property
    def top(self) -> int:
        return len(self.rungs) - 1

    def promotable(self, results: list[tuple[int, float, float]], eligible: set[int] | None = None) -> list[int]:
        """Trial ids among `results` (trial id, f1 at this rung, f2) allowed to go on, best first:
        floor(n / eta) of all n results, chosen among the `eligible` ids (None: all of them)."""
        k = len(results) // self.eta
        pool = results if eligible is None else [r for r in results if r[0] in eligible]
        k = min(k, len(pool))
        if k < 1:
            return []
        F = np.array([[f1, f2] for _, f1, f2 in pool], dtype=float)
        return [pool[i][0] for i in best_n_nsga2(F, k)]

    def _eligible(self, rows, trials: dict, rung: int) -> set[int] | None:
        """With `pickable_only`: pickable_ids at `rung`; None (everyone) without it."""
        return pickable_ids(rows, trials, rung, dict(self.caps)) if self.pickable_only else None

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
            for tid in self.promotable(results, self._eligible(rows, trials, rung)):
                if (tid, rung + 1) not in started and tid not in busy:
                    return Promotion(tid, rung + 1, self.rungs[rung + 1])
        return None

    def unfinished(self, store: TrialStore) -> list[Promotion]:
        """Promotions a killed session left running (rungs > 0): resumed from their saved state."""
        return [Promotion(r.trial_id, r.rung, r.epochs) for r in store.rung_rows(TrialStatus.RUNNING) if r.rung > 0]

