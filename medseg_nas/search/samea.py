"""SaMEA: surrogate-assisted MOEA/D with PBI (the EMONAS-Net search), in three phases.

1. initialisation — one genome per subproblem (N weight vectors from pymoo's uniform reference
   directions), all trained: random ones, except that the size-only subproblem λ = (1, 0)
   starts from the smallest genome of the space (the trivial end of every front);
2. learning — `learning_generations` MOEA/D generations: for each subproblem i two parents from
   its neighbourhood B(i) (the T nearest weight vectors; the whole population with probability
   0.1), uniform crossover + mutation; a trained offspring replaces every neighbour j ∈ B(i)
   whose PBI value g(·|λʲ, z*) it improves. The values of offspring that improved at least one
   subproblem raise the *selection probabilities* of those values (Laplace-smoothed counts per
   decision variable), and every evaluation feeds the surrogate's training set;
3. exploitation — per subproblem, `screen_candidates` offspring are drawn with mutation values
   sampled from the learned probabilities; a random forest predicts f1 (f2 is exact) and only
   the best candidate, and only if its predicted g beats the subproblem's current solution,
   is trained. If the forest rejects every subproblem of a generation, the candidate with the
   smallest predicted shortfall is trained anyway so the search never stalls. The forest is
   refitted every generation; its Kendall τ against the true f1 of each trained batch is logged.

Choices the paper leaves open (documented here, see SEARCH_ALGORITHMS.md):
- Objectives are normalised before decomposition by the ideal point z* (best seen) and the nadir
  of the Pareto front of all evaluations (not of the population, whose range shrinks as it
  converges and would stop the extremes from moving out), then PBI (pymoo, θ from config).
- A failed trial has g = +inf: it never replaces anyone and never counts as improving.
- Generations are batches: all offspring of a generation are asked together (parallel
  executors), and each one updates the population as soon as it is told.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from pymoo.decomposition.pbi import PBI
from pymoo.util.ref_dirs import get_reference_directions

from medseg_nas.search.archive import pareto_front
from medseg_nas.search.base import BaseStrategy, Objectives
from medseg_nas.search.surrogate import Surrogate, kendall_tau
from medseg_nas.space.genome import VARIABLES, Genome, SearchSpace, _same

DELTA = 0.9  # probability of mating inside the neighbourhood (Li & Zhang 2009)


class SaMEA(BaseStrategy):
    name = "samea"

    def __init__(self, space: SearchSpace, f2_of: Callable[[Genome], float], seed: int, cfg, seed_smallest: bool = True) -> None:
        super().__init__(space, f2_of, seed, seed_smallest)
        self.N = max(2, int(cfg.n_subproblems))
        self.T = max(2, min(int(cfg.neighbourhood), self.N))
        self.theta = float(cfg.theta)
        self.learning_generations = int(cfg.learning_generations)
        self.screen_candidates = max(1, int(cfg.screen_candidates))
        self.surrogate = Surrogate(int(cfg.surrogate_trees), seed)
        self.weights = get_reference_directions("uniform", 2, n_partitions=self.N - 1)
        dist = np.linalg.norm(self.weights[:, None, :] - self.weights[None, :, :], axis=-1)
        self.B = [list(map(int, np.argsort(dist[i], kind="stable")[: self.T])) for i in range(self.N)]
        self.pbi = PBI(theta=self.theta)
        # own state
        self.population: list[list | None] = [None] * self.N  # per subproblem: [genome json, f1|None, f2|None]
        self.phase = "init"
        self.generation = 0
        self.queue: list[list] = []  # [genome json, subproblem, predicted f1 | None] to hand out
        self.inflight: list[list] = []  # handed out, not told yet
        self.counts = {var: [1.0] * len(space.choices(var)) for var in VARIABLES}
        self.n_screened = 0
        self.n_rejected = 0
        self.batch_pairs: list[list[float]] = []  # (predicted, true) f1 of this generation
        self.taus: list[float] = []
        self._start_init()

    # -- phases -----------------------------------------------------------------------------
    def _start_init(self) -> None:
        # λ = (1, 0) is the ray along the f1 axis at the smallest f2: it starts from the smallest genome
        size_only = int(np.argmax(self.weights[:, 0]))
        small = Genome.smallest(self.space)
        avoid: set[str] = {small.key()}
        for i in range(self.N):
            if i == size_only:
                self.queue.append([small.to_json(), i, None])
                continue
            g = self.novel_random(avoid)
            avoid.add(g.key())
            self.queue.append([g.to_json(), i, None])

    def _next_generation(self) -> None:
        if self.batch_pairs:
            tau = kendall_tau([p for p, _ in self.batch_pairs], [t for _, t in self.batch_pairs])
            if tau is not None:
                self.taus.append(tau)
            self.batch_pairs = []
        if self.phase == "init":
            self.phase = "learning" if self.learning_generations > 0 else "exploitation"
        elif self.phase == "learning" and self.generation >= self.learning_generations:
            self.phase = "exploitation"
        self.generation += 1
        order = list(self.rng.permutation(self.N))
        if self.phase == "learning":
            avoid: set[str] = set()
            for i in order:
                g = self._offspring(int(i), learned=False, avoid=avoid)
                avoid.add(g.key())
                self.queue.append([g.to_json(), int(i), None])
        else:
            self._screen(order)

    def _screen(self, order) -> None:
        done = [(g, F[0]) for g, F in self.evaluated()]
        self.surrogate.fit([g for g, _ in done], [f for _, f in done], seed=self.seed)
        bounds = self._bounds()  # the history does not change while screening
        avoid: set[str] = set()
        fallback = None  # (shortfall, genome, subproblem, predicted f1)
        for i in order:
            i = int(i)
            cands, keys = [], set()
            for _ in range(self.screen_candidates):
                g = self._offspring(i, learned=True, avoid=avoid | keys)
                if g.key() not in keys:
                    keys.add(g.key())
                    cands.append(g)
            self.n_screened += len(cands)
            if not self.surrogate.ready:  # too few points to trust: train the first candidate
                self.queue.append([cands[0].to_json(), i, None])
                avoid.add(cands[0].key())
                self.n_rejected += len(cands) - 1
                continue
            f1 = self.surrogate.predict(cands)
            F = np.array([[a, self.f2_of(g)] for a, g in zip(f1, cands)])
            g_pred = self._g(F, i, bounds)
            best = int(np.argmin(g_pred))
            current = self._g_of_member(i, bounds)
            if g_pred[best] < current:
                self.queue.append([cands[best].to_json(), i, float(f1[best])])
                avoid.add(cands[best].key())
                self.n_rejected += len(cands) - 1
            else:
                self.n_rejected += len(cands)
                shortfall = float(g_pred[best] - current)
                if fallback is None or shortfall < fallback[0]:
                    fallback = (shortfall, cands[best], i, float(f1[best]))
        if not self.queue and fallback is not None:
            self.queue.append([fallback[1].to_json(), fallback[2], fallback[3]])
            self.n_rejected -= 1

    # -- variation -------------------------------------------------------------------------------
    def _offspring(self, i: int, learned: bool, avoid: set[str]) -> Genome:
        members = [k for k in range(self.N) if self.population[k] is not None and self.population[k][1] is not None]
        pool = [k for k in self.B[i] if k in members] if self.rng.random() < DELTA else members
        if len(pool) < 2:
            pool = members
        if len(pool) < 2:
            return self.novel_random(avoid)
        for _ in range(self.NOVELTY_TRIES):
            a, b = self.rng.choice(pool, size=2, replace=False)
            pa, pb = (Genome.from_json(self.population[int(k)][0]) for k in (a, b))
            child = pa.crossover(pb, self.rng)
            child = self._learned_mutation(child) if learned else child.mutate(self.rng, self.space)
            if not self.known(child) and child.key() not in avoid:
                return child
        return self.novel_random(avoid)

    def _learned_mutation(self, g: Genome) -> Genome:
        """Mutation whose new values are drawn with the learned selection probabilities."""
        vals = list(g.values())
        free = [k for k, var in enumerate(VARIABLES) if len(self.space.choices(var)) > 1]
        forced = free[int(self.rng.integers(len(free)))] if free else -1
        for k, var in enumerate(VARIABLES):
            if k != forced and self.rng.random() >= 1.0 / len(VARIABLES):
                continue
            choices = self.space.choices(var)
            w = np.array([0.0 if _same(c, vals[k]) else self.counts[var][j] for j, c in enumerate(choices)])
            if w.sum() > 0:
                vals[k] = choices[int(self.rng.choice(len(choices), p=w / w.sum()))]
        return Genome.from_values(vals)

    def selection_probabilities(self) -> dict[str, list[float]]:
        return {var: list(np.asarray(c) / sum(c)) for var, c in self.counts.items()}

    # -- decomposition ---------------------------------------------------------------------------
    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Ideal point and scale: min and range of the Pareto front of everything evaluated."""
        done = np.array([[f1, f2] for _, f1, f2 in self.history if f1 is not None], dtype=float).reshape(-1, 2)
        if not len(done):
            return np.zeros(2), np.ones(2)
        front = done[pareto_front(done)]
        ideal = front.min(axis=0)
        nadir = front.max(axis=0)
        return ideal, np.maximum(nadir - ideal, 1e-6)

    def _g(self, F: np.ndarray, i: int, bounds=None) -> np.ndarray:
        """PBI values of the rows of F for subproblem i, on normalised objectives.

        `bounds` (from _bounds) can be passed by callers that score many points at one moment.
        """
        ideal, scale = self._bounds() if bounds is None else bounds
        Fn = (np.atleast_2d(F) - ideal) / scale
        return np.asarray(self.pbi.do(Fn, self.weights[i], ideal_point=np.zeros(2))).reshape(-1)

    def _g_of_member(self, j: int, bounds=None) -> float:
        m = self.population[j]
        if m is None or m[1] is None:
            return math.inf
        return float(self._g(np.array([[m[1], m[2]]]), j, bounds)[0])

    # -- protocol ------------------------------------------------------------------------------
    def _ask(self, n: int) -> list[Genome]:
        out: list[Genome] = []
        while len(out) < n:
            if not self.queue:
                if self.inflight or self.pending:
                    break  # the generation is still being trained
                self._next_generation()
                if not self.queue:
                    break
            item = self.queue.pop(0)
            self.inflight.append(item)
            out.append(Genome.from_json(item[0]))
        return out

    def _on_tell(self, genome: Genome, F: Objectives | None) -> None:
        js = genome.to_json()
        item = next((it for it in self.inflight if it[0] == js), None)
        if item is None:
            return  # not one of ours (e.g. told twice): the history has it already
        self.inflight.remove(item)
        _, i, predicted = item
        if predicted is not None and F is not None:
            self.batch_pairs.append([predicted, F[0]])
        if self.phase == "init":
            self.population[i] = [js, None if F is None else F[0], None if F is None else F[1]]
            return
        if F is None:
            return
        improved = False
        js_F = np.array([F])
        bounds = self._bounds()  # from the evaluated front, which replacements below do not change
        for j in [int(j) for j in self.rng.permutation(self.B[i])]:
            if float(self._g(js_F, j, bounds)[0]) < self._g_of_member(j, bounds):
                self.population[j] = [js, F[0], F[1]]
                improved = True
        if improved:
            for var, value in zip(VARIABLES, genome.values()):
                choices = self.space.choices(var)
                for k, c in enumerate(choices):
                    if _same(c, value):
                        self.counts[var][k] += 1.0

    def stats(self) -> dict:
        s = super().stats()
        s.update(
            phase=self.phase,
            generation=self.generation,
            surrogate_screened=self.n_screened,
            surrogate_rejected=self.n_rejected,
            surrogate_tau=self.taus[-1] if self.taus else None,
            surrogate_taus=list(self.taus),
        )
        return s

    def _own_state(self) -> dict:
        return {
            "population": self.population,
            "phase": self.phase,
            "generation": self.generation,
            "queue": self.queue,
            "inflight": self.inflight,
            "counts": self.counts,
            "n_screened": self.n_screened,
            "n_rejected": self.n_rejected,
            "batch_pairs": self.batch_pairs,
            "taus": self.taus,
        }

    def _load_own_state(self, d: dict) -> None:
        self.population = [None if m is None else list(m) for m in d["population"]]
        self.phase = d["phase"]
        self.generation = int(d["generation"])
        self.queue = [list(q) for q in d["queue"]]
        self.inflight = [list(q) for q in d["inflight"]]
        self.counts = {k: list(map(float, v)) for k, v in d["counts"].items()}
        self.n_screened = int(d["n_screened"])
        self.n_rejected = int(d["n_rejected"])
        self.batch_pairs = [list(p) for p in d["batch_pairs"]]
        self.taus = list(d["taus"])
