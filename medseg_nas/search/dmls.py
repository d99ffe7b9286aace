"""DMLS: dominance-based multi-objective local search (Zouambi et al., CEC 2023).

- Archive: unbounded, mutually non-dominated (genome, f1, f2); a genome enters when no member
  weakly dominates it, and the members it dominates leave. Failed trials never enter.
- Initial archive: with `search.seed_smallest` the smallest genome of the space plus
  `initial_archive_size − 1` random ones, else `initial_archive_size` random ones, all trained;
  the non-dominated ones form the archive (a fixed number of evaluations instead of "random
  solutions until the archive has k members", which can take unboundedly long).
- Iteration: pick an unvisited archive member at random; evaluate its neighbours (every genome
  differing in one decision variable) in an order set by `neighbour_order`:
  `random` — a random permutation (the thesis's DMLS);
  `linear` — our two-objective adaptation of LS-PON (the thesis's is a single-objective linear
  regression): a ridge model on one-hot decision variables, refitted on every evaluation so far,
  predicts each neighbour's normalised Pareto rank and the neighbours are asked best-predicted
  first, the order fixed once per selected solution (rank_model.py);
  `forest` (old name `surrogate`) — our variant: a random forest predicts f1 (f2 is exact), and
  the neighbours predicted to dominate the current solution come first, then by predicted f1.
  Neighbours already evaluated are answered from the history for free. First improvement: as
  soon as a neighbour dominates the current solution (compared with the current solution's own
  objectives, which stay known after the dominating neighbour pushes it out of the archive), the
  current one is marked visited and another is picked. A member whose whole neighbourhood was
  evaluated is marked visited too.
- Restart: when every archive member is visited, `initial_archive_size` new random genomes are
  trained and merged into the (kept) archive; the ones that enter are unvisited.
- Parallel asks: up to n neighbours of the current member are handed out at once; results that
  arrive after a first improvement still update the archive.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from medseg_nas.search.archive import dominates
from medseg_nas.search.base import BaseStrategy, Objectives
from medseg_nas.search.initial_design import initial_design
from medseg_nas.search.rank_model import LinearRankModel, normalised_ranks
from medseg_nas.search.surrogate import Surrogate, kendall_tau, pooled_tau
from medseg_nas.space.genome import Genome, SearchSpace


TAU_BATCH = 8  # trials per logged Kendall τ of the surrogate
NEIGHBOUR_ORDERS = ("random", "forest", "linear")
ORDER_ALIASES = {"surrogate": "forest"}  # the old name, so existing configs and run dirs load


class DMLS(BaseStrategy):
    name = "dmls"

    def __init__(self, space: SearchSpace, f2_of: Callable[[Genome], float], seed: int, cfg, surrogate_trees: int = 200, seed_smallest: bool = True) -> None:
        super().__init__(space, f2_of, seed, seed_smallest)
        self.initial_size = max(1, int(cfg.initial_archive_size))
        order = str(cfg.neighbour_order)
        self.order = ORDER_ALIASES.get(order, order)
        if self.order not in NEIGHBOUR_ORDERS:
            raise ValueError(f"search.dmls.neighbour_order must be one of {', '.join(NEIGHBOUR_ORDERS)}, not {order!r}")
        self.surrogate = Surrogate(surrogate_trees, seed) if self.order == "forest" else None
        self.rank_model = LinearRankModel(space) if self.order == "linear" else None
        # own state
        self.archive: list[list] = []  # [genome json, f1, f2, visited]
        self.current: str | None = None  # genome json being explored
        self.queue: list[list] = []  # [genome json, predicted f1 | None]: neighbours still to ask
        self.init_left: list[str] = []  # genomes of the (re)initialisation still to ask
        self.restarts = 0
        self.pairs: list[list[float]] = []  # [predicted, f1] (forest) or [predicted, f1, f2] (linear)
        self.taus: list[float] = []
        # forest order: every (predicted f1, f1) of the run, for the pooled τ (the linear model's
        # ranks are measured per batch on a moving scale, so they are not pooled)
        self.pooled_pairs: list[list[float]] = []
        self.predicted: dict[str, float] = {}  # asked genome json → predicted f1 or rank (for τ)
        self.exhausted = False
        self._initialise(first=True)

    # -- archive -------------------------------------------------------------------------------
    def _offer(self, js: str, F: Objectives) -> bool:
        """Put (js, F) into the archive if no member weakly dominates it; drop those it dominates."""
        for m in self.archive:
            if m[0] == js or dominates((m[1], m[2]), F) or (m[1], m[2]) == tuple(F):
                return False
        self.archive = [m for m in self.archive if not dominates(F, (m[1], m[2]))]
        self.archive.append([js, F[0], F[1], False])
        return True

    def _initialise(self, first: bool) -> None:
        avoid: set[str] = set()
        picks: list[Genome] = []
        if first:  # the shared initial design (initial_design.py), the same start as every strategy's
            picks = initial_design(self.space, self.seed, self.initial_size, self.seed_smallest)
            avoid = {g.key() for g in picks}
        while len(picks) < self.initial_size:
            g = self.novel_random(avoid)
            avoid.add(g.key())
            picks.append(g)
        self.init_left = [g.to_json() for g in picks]
        if not first and all(self.known(g) for g in picks):
            self.exhausted = True  # random draws find nothing new: the space is (nearly) all seen

    # -- local search ----------------------------------------------------------------------------
    def _select(self) -> bool:
        """Pick an unvisited archive member as the current solution; False when none is left."""
        unvisited = [m for m in self.archive if not m[3]]
        if not unvisited:
            return False
        m = unvisited[int(self.rng.integers(len(unvisited)))]
        self.current = m[0]
        cur = Genome.from_json(m[0])
        nbrs = cur.neighbours(self.space)
        nbrs = [nbrs[int(k)] for k in self.rng.permutation(len(nbrs))]
        preds: list[float | None] = [None] * len(nbrs)
        if self.surrogate is not None:
            nbrs, preds = self._forest_order(nbrs, (m[1], m[2]))
        elif self.rank_model is not None:
            nbrs, preds = self._linear_order(nbrs)
        self.queue = [[g.to_json(), p] for g, p in zip(nbrs, preds)]
        return True

    def _forest_order(self, nbrs: list[Genome], f_cur: Objectives) -> tuple[list[Genome], list[float | None]]:
        """Known neighbours first (free), then predicted to dominate the current one, then by f1."""
        preds: list[float | None] = [None] * len(nbrs)
        self._flush_tau()
        done = self.evaluated()
        self.surrogate.fit([g for g, _ in done], [F[0] for _, F in done], seed=self.seed)
        unknown = [k for k, g in enumerate(nbrs) if g.key() not in self.results]
        if not (self.surrogate.ready and unknown):
            return nbrs, preds
        for k, v in zip(unknown, self.surrogate.predict([nbrs[k] for k in unknown])):
            preds[k] = float(v)

        def rank(k: int):
            if preds[k] is None:
                return (0, -np.inf)  # known: answered for free, look at it first
            F = (preds[k], self.f2_of(nbrs[k]))
            return (1 if dominates(F, f_cur) else 2, preds[k])

        order = sorted(range(len(nbrs)), key=lambda k: (rank(k), k))
        return [nbrs[k] for k in order], [preds[k] for k in order]

    def _linear_order(self, nbrs: list[Genome]) -> tuple[list[Genome], list[float | None]]:
        """LS-PON: known neighbours first (free), then by predicted normalised rank, lowest first."""
        preds: list[float | None] = [None] * len(nbrs)
        self._flush_tau()
        done = self.evaluated()
        self.rank_model.fit([g for g, _ in done], [F for _, F in done])
        unknown = [k for k, g in enumerate(nbrs) if g.key() not in self.results]
        if not (self.rank_model.ready and unknown):
            return nbrs, preds
        for k, v in zip(unknown, self.rank_model.predict([nbrs[k] for k in unknown])):
            preds[k] = float(v)
        order = sorted(range(len(nbrs)), key=lambda k: (preds[k] is not None, -np.inf if preds[k] is None else preds[k], k))
        return [nbrs[k] for k in order], [preds[k] for k in order]

    def _flush_tau(self) -> None:
        """Kendall τ of the ordering model's predictions against the trials since the last flush:
        against f1 (forest), or against the normalised Pareto rank among everything evaluated now
        (linear; measured for the whole batch at once, so the rank scale is the same for all)."""
        if self.rank_model is None:
            measured = [p[1] for p in self.pairs]
        else:
            done = [F for _, F in self.evaluated()]
            rank = dict(zip(map(tuple, done), normalised_ranks(done)))
            measured = [float(rank[(p[1], p[2])]) for p in self.pairs]
        tau = kendall_tau([p[0] for p in self.pairs], measured)
        if tau is not None:
            self.taus.append(tau)
        self.pairs = []

    def _mark_visited(self, js: str) -> None:
        for m in self.archive:
            if m[0] == js:
                m[3] = True

    def _improves_current(self, F: Objectives) -> bool:
        """Does F dominate the current solution? Asked after `_offer`, which may already have
        removed the current solution from the archive, so its objectives come from the history."""
        if self.current is None:
            return False
        cur = self.results.get(Genome.from_json(self.current).key())
        return cur is not None and dominates(F, cur)

    def _finish_current(self) -> None:
        if self.current is not None:
            self._mark_visited(self.current)
        self.current = None
        self.queue = []

    # -- protocol ------------------------------------------------------------------------------
    def _ask(self, n: int) -> list[Genome]:
        out: list[Genome] = []
        guard = 0
        while len(out) < n:
            guard += 1
            if guard > 100000:  # only reachable when nearly the whole space is evaluated
                break
            if self.init_left:
                js = self.init_left.pop(0)
                g = Genome.from_json(js)
                if g.key() in self.results:
                    F = self.results[g.key()]
                    if F is not None:
                        self._offer(js, F)
                    continue
                out.append(g)
                continue
            if self.pending or out:
                if not self.queue and self.current is not None:
                    break  # the rest of this neighbourhood is being trained
                if self.current is None:
                    break  # wait for the initialisation's results before searching
            if self.current is None:
                if not self._select():
                    if self.exhausted:
                        break
                    self.restarts += 1
                    self._initialise(first=False)
                    continue
            if not self.queue:
                self._finish_current()  # whole neighbourhood evaluated
                continue
            js, pred = self.queue.pop(0)
            g = Genome.from_json(js)
            if g.key() in self.results or js in self.pending or any(o.key() == g.key() for o in out):
                F = self.results.get(g.key())
                if F is not None:
                    self._offer(js, F)
                    if self._improves_current(F):
                        self._finish_current()
                continue
            if pred is not None:
                self.predicted[js] = pred
            out.append(g)
        return out

    @property
    def done(self) -> bool:
        return self.exhausted and not self.init_left and self.current is None

    def _on_tell(self, genome: Genome, F: Objectives | None) -> None:
        js = genome.to_json()
        pred = self.predicted.pop(js, None)
        if F is None:
            return
        if pred is not None:
            self.pairs.append([pred, F[0]] if self.rank_model is None else [pred, F[0], F[1]])
            if self.rank_model is None:
                self.pooled_pairs.append([pred, F[0]])
            if len(self.pairs) >= TAU_BATCH:
                self._flush_tau()
        self._offer(js, F)
        if self.current is not None and self._improves_current(F):
            self._finish_current()

    def stats(self) -> dict:
        s = super().stats()
        s.update(
            archive=len(self.archive),
            visited=sum(1 for m in self.archive if m[3]),
            restarts=self.restarts,
            surrogate_tau=self.taus[-1] if self.taus else None,
            surrogate_taus=list(self.taus),
            **pooled_tau(self.pooled_pairs),
        )
        return s

    def _own_state(self) -> dict:
        return {
            "archive": self.archive,
            "current": self.current,
            "queue": self.queue,
            "init_left": self.init_left,
            "restarts": self.restarts,
            "pairs": self.pairs,
            "taus": self.taus,
            "pooled_pairs": self.pooled_pairs,
            "predicted": dict(self.predicted),
            "exhausted": self.exhausted,
        }

    def _load_own_state(self, d: dict) -> None:
        self.archive = [list(m) for m in d["archive"]]
        self.current = d["current"]
        self.queue = [list(q) for q in d["queue"]]
        self.init_left = list(d["init_left"])
        self.restarts = int(d["restarts"])
        self.pairs = [list(p) for p in d["pairs"]]
        self.taus = list(d["taus"])
        self.pooled_pairs = [list(p) for p in d.get("pooled_pairs", [])]  # states saved before it: none
        self.predicted = {k: float(v) for k, v in d["predicted"].items()}
        self.exhausted = bool(d["exhausted"])
