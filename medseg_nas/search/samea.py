"""SaMEA: surrogate-assisted MOEA/D with PBI (the EMONAS-Net search), as its authors built it.

Every rule below follows the authors' code (GitHub mariabaldeon/EMONAS, Search/SaMEA_Algorithm.py
and Search/SurrogateRandomForest.py; numbers from main.py); each function names the one it
reproduces. The numbers live in `SaMEAConfig` (search.samea in the config).

Generations. Generation 0 is the initial population: a Latin hypercube of N genomes, all trained,
then sorted so the lowest-f1 network sits on the weight vector (1, 0). Generations 1..LGen are
learning generations: slot j breeds one child for subproblem j and every child is trained.
From LGen + 1 on, each slot breeds a child for a subproblem drawn with the learned subproblem
probabilities and the random forest screens it: it is trained at once if its predicted PBI value
matches or beats that of ANY of its T neighbours' current solutions, otherwise it is deferred;
when every slot of the generation is done, the deferred children that would join the (predicted)
Pareto front, the one with the lowest predicted f1 and the one with the highest tree std are
trained too. A trained child replaces each neighbour whose PBI value it matches or beats. At the
end of each generation the subproblem and value probabilities are updated.

Mapping onto ask/tell (the runner's budget is trials, not generations): `ask(n)` breeds the next
slots of the current generation from the population as it is at that moment, so with one trial
in flight at a time the order of events is exactly the authors' sequential loop (child j is bred
after child j − 1 was trained and placed), and with n workers n children of a generation train
together. Deferred children cost no budget. The end-of-generation steps wait for every result of
the generation. G only sets the mutation schedule; the search runs until the trial budget ends
(past generation G − 1 the mutation probability stays at its floor 1/n).

Where we differ from the authors' code, and why:
- A failed trial (OOM, NaN) has no objectives: it never replaces anyone, its g is +inf as a
  population member, it is left out of the forest's data and counts as f1 = f1_max (zero merit)
  in the value probabilities (the authors record a loss of 1000, which drives those
  probabilities negative).
- No OOM rule for 9 cells × 32 filters (check_childhyper): our space is restricted by
  config (`space.*`) instead.
- The "best N by NSGA-II ranking" (pygmo select_best_N_mo) is pymoo's non-dominated sorting with
  crowding distance; ties keep the earlier evaluation.
- The generation of a child is matched by identity, not by the authors' name prefix 'x_<gen>'
  (which also matches generation 10 when counting generation 1).

`search.samea.rules: adaptive` keeps the earlier implementation's choices for four rules (see
`samea_rules.Rules`). Four departures that `paper` keeps (f1's C, last-5 on short
trials, f2's upper bound, the forest's value order) are named in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from medseg_nas.errors import ConfigError
from medseg_nas.search.base import BaseStrategy, Objectives
from medseg_nas.search.initial_design import initial_design
from medseg_nas.search.samea_rules import (
    RULES,
    _index,
    best_n_nsga2,
    deferred_to_train,
    f1_by_value,
    front_bounds,
    largest_genome,
    mutation_probability,
    neighbourhoods,
    pbi,
    subproblem_probabilities,
    value_probabilities,
    weight_vectors,
)
from medseg_nas.search.samea_state import OPTIONAL_FIELDS, STATE_FIELDS
from medseg_nas.search.surrogate import Surrogate, kendall_tau, pooled_tau
from medseg_nas.space.genome import VARIABLES, Genome, SearchSpace


# f1's range [0, (α + 1)·C + β] at ObjectivesConfig's defaults (α = β = 0.25, C = 1), for callers
# without a run's reference box; a constant, not an import of config (config imports the strategy
# registry, so the import ran back up). tests/test_samea.py checks the two agree.
DEFAULT_F1_BOUNDS = (0.0, 1.5)


class SaMEA(BaseStrategy):
    name = "samea"

    def __init__(
        self,
        space: SearchSpace,
        f2_of: Callable[[Genome], float],
        seed: int,
        cfg,
        seed_smallest: bool = True,
        f1_bounds: tuple[float, float] | None = None,
    ) -> None:
        """`f1_bounds`: f1's fixed normalisation range, [0, (α + 1)·C + β] for our f1 (the runner's
        reference box); default from `ObjectivesConfig()`. f2's range is the smallest and the
        largest network of the space (calculate_reference() / calculate_maxpoint())."""
        super().__init__(space, f2_of, seed, seed_smallest)
        if cfg.rules not in RULES:
            raise ConfigError(f"search.samea.rules must be one of {sorted(RULES)}, got {cfg.rules!r}")
        self.rules_name = cfg.rules
        self.rules = RULES[cfg.rules]
        self.N = max(2, int(cfg.N))
        self.T = max(2, min(int(cfg.T), self.N))
        self.G = max(2, int(cfg.G))
        self.LGen = max(0, int(cfg.LGen))
        self.theta = float(cfg.theta if self.rules_name == "paper" else cfg.adaptive_theta)
        self.phi0 = float(cfg.phi0)
        self.crossover_p = float(cfg.crossover_p)
        self.value_smoothing = float(cfg.value_smoothing)
        self.subproblem_smoothing = float(cfg.subproblem_smoothing)
        self.screen_candidates = max(1, int(cfg.screen_candidates))
        self.weights = weight_vectors(self.N, float(cfg.w1_min) if self.rules.weights == "half" else 0.0)
        self.B = neighbourhoods(self.weights, self.T)
        f1_bounds = DEFAULT_F1_BOUNDS if f1_bounds is None else f1_bounds
        f2_lo = float(f2_of(Genome.smallest(space)))
        f2_hi = float(f2_of(largest_genome(space, f2_of)))
        self.lo = np.array([float(f1_bounds[0]), f2_lo])
        self.hi = np.array([float(f1_bounds[1]), f2_hi])
        self.surrogate = Surrogate(int(cfg.surrogate_trees), seed, int(cfg.surrogate_min_samples_split), self._features)
        self._fitted_on = -1  # number of points the forest was fitted on (it is rebuilt, never saved)
        # own state (all JSON)
        self.population: list[list | None] = [None] * self.N  # per subproblem: [genome json, f1|None, f2|None]
        self.generation = 0
        self.stage = "init"  # "init" | "children" | "deferred"
        self.slot = 0  # next slot of the generation to breed
        self.queue: list[list] = []  # [genome json, subproblem, predicted f1 | None] to hand out
        self.inflight: list[list] = []  # handed out, not told yet
        self.deferred: list[list] = []  # [genome json, subproblem, predicted f1, tree std]
        self.generated: list[str] = []  # keys bred in this generation (trained or deferred)
        self.born: list[list] = []  # [key, subproblem] of the children trained in this generation
        self.fallback: list | None = None  # rules "adaptive": [shortfall, genome json, subproblem, predicted f1]
        self.queued_in_gen = 0
        self.value_probs = {var: [1.0 / len(space.choices(var))] * len(space.choices(var)) for var in VARIABLES}
        self.subproblem_probs = [1.0 / self.N] * self.N
        self.success = [0.0] * self.N
        self.n_screened = 0
        self.n_deferred = 0
        self.n_rejected = 0
        self.batch_pairs: list[list[float]] = []  # (predicted, true) f1 of this generation
        self.pooled_pairs: list[list[float]] = []  # every (predicted, true) f1 of the run
        self.taus: list[float] = []
        self._start_init()

    # -- generation 0 -------------------------------------------------------------------------
    def _start_init(self) -> None:
        """The first N genomes of the shared initial design (initial_design.py: the smallest genome
        first with search.seed_smallest, then the authors' Latin hypercube), the same start as
        every other strategy's; the population is sorted by f1 once they are trained."""
        for k, g in enumerate(initial_design(self.space, self.seed, self.N, self.seed_smallest)):
            self.queue.append([g.to_json(), k, None])

    def _sort_initial_population(self) -> None:
        """Highest f1 first (failures first), ties by fewer parameters: subproblem N − 1, the weight
        (1, 0), gets the lowest-f1 network (Search/SaMEA_Algorithm.py, SortInitialPop())."""

        def key(m):
            return (-(math.inf if m[1] is None else m[1]), math.inf if m[2] is None else m[2])

        self.population = sorted(self.population, key=key)

    # -- the generation loop ------------------------------------------------------------------------
    @property
    def learning(self) -> bool:
        return self.generation <= self.LGen

    def _advance(self) -> bool:
        """Move to the next step once nothing of the current one is queued or in flight."""
        if self.stage == "init":
            if any(m is None for m in self.population):
                return False
            self._sort_initial_population()
            self._start_generation(1)
            return True
        if self.stage == "children":
            self.stage = "deferred"
            if self.rules.screening == "neighbours" and self.deferred:
                self._train_deferred()
                return True
            if self.rules.screening == "batch" and self.queued_in_gen == 0 and self.fallback is not None:
                _, js, i, pred = self.fallback
                self.queue.append([js, i, pred])
                self.n_rejected -= 1
                return True
        self._end_generation()
        self._start_generation(self.generation + 1)
        return True

    def _start_generation(self, g: int) -> None:
        self.generation = g
        self.stage = "children"
        self.slot = 0
        self.generated, self.deferred, self.born = [], [], []
        self.fallback = None
        self.queued_in_gen = 0

    def _end_generation(self) -> None:
        """Kendall τ of the generation's screened children; subproblem and value probabilities."""
        if self.batch_pairs:
            tau = kendall_tau([p for p, _ in self.batch_pairs], [t for _, t in self.batch_pairs])
            if tau is not None:
                self.taus.append(tau)
            self.batch_pairs = []
        done = self.evaluated()
        if done:
            F = np.array([F for _, F in done], dtype=float)
            born = {k: sp for k, sp in self.born}
            for idx in best_n_nsga2(F, self.N):
                sp = born.get(done[idx][0].key())
                if sp is not None:
                    self.success[sp] += 1.0
        if self.generation > self.LGen:
            self.subproblem_probs = subproblem_probabilities(self.success, self.subproblem_smoothing)
            self._update_value_probabilities()

    def _update_value_probabilities(self) -> None:
        f1_max = float(self.hi[0])
        rows = [(g.values(), f1_max if F is None else F[0]) for g, F in self.evaluated(include_failed=True)]
        for k, var in enumerate(VARIABLES):
            by_value = f1_by_value(rows, k, self.space.choices(var))
            self.value_probs[var] = value_probabilities(by_value, f1_max, self.value_smoothing)

    def _breed_slot(self) -> None:
        """Breed the child of the next slot; queue it for training, or defer / reject it."""
        j = self.slot
        self.slot += 1
        if self.learning:
            sp = j  # Search/SaMEA_Algorithm.py, SelectSuproblem(): each subproblem once
        else:
            sp = int(self.rng.choice(self.N, p=np.asarray(self.subproblem_probs)))
        child = self._child(sp)
        self.generated.append(child.key())
        if self.learning or not self._surrogate_ready():
            self._queue(child, sp, None)
            return
        if self.rules.screening == "neighbours":
            self._screen_against_neighbours(child, sp)
        else:
            self._screen_batch(child, sp)

    def _queue(self, child: Genome, sp: int, pred_f1: float | None) -> None:
        self.queue.append([child.to_json(), sp, pred_f1])
        self.queued_in_gen += 1

    # -- screening ------------------------------------------------------------------------------------
    def _screen_against_neighbours(self, child: Genome, sp: int) -> None:
        """Train the child at once if its predicted g matches or beats that of ANY neighbour's
        current solution; defer it otherwise (EvaluateCandidateArchitecture())."""
        mean, std = self._predict([child])
        self.n_screened += 1
        f1 = self._f1_of(mean[0])
        bounds = self._bounds()
        F = np.array([[f1, self.f2_of(child)]])
        if any(self._g(F, k, bounds)[0] <= self._g_of_member(k, bounds) for k in self.B[sp]):
            self._queue(child, sp, f1)
        else:
            self.deferred.append([child.to_json(), sp, f1, float(std[0])])
            self.n_deferred += 1
            self.n_rejected += 1

    def _train_deferred(self) -> None:
        """Queue the deferred children that ReturnCandidatesToTrain() picks."""
        trained = np.array([F for _, F in self.evaluated()], dtype=float).reshape(-1, 2)
        cand = np.array([[d[2], self.f2_of(Genome.from_json(d[0]))] for d in self.deferred])
        std = np.array([d[3] for d in self.deferred])
        for k in deferred_to_train(trained, cand, std):
            js, sp, f1, _ = self.deferred[k]
            self.queue.append([js, sp, f1])
            self.n_rejected -= 1

    def _screen_batch(self, first: Genome, sp: int) -> None:
        """rules "adaptive": screen `screen_candidates` children, train the best only if its
        predicted g beats the subproblem's own current solution."""
        cands, keys = [first], {first.key()}
        for _ in range(self.screen_candidates - 1):
            g = self._child(sp, avoid=set(self.generated) | keys)
            if g.key() not in keys:
                keys.add(g.key())
                cands.append(g)
        self.n_screened += len(cands)
        mean, _ = self._predict(cands)
        f1 = [self._f1_of(m) for m in mean]
        bounds = self._bounds()
        F = np.array([[a, self.f2_of(g)] for a, g in zip(f1, cands)])
        g_pred = self._g(F, sp, bounds)
        best = int(np.argmin(g_pred))
        current = self._g_of_member(sp, bounds)
        self.generated.extend(k for k in keys if k != first.key())
        if g_pred[best] < current:
            self._queue(cands[best], sp, f1[best])
            self.n_rejected += len(cands) - 1
            return
        self.n_rejected += len(cands)
        shortfall = float(g_pred[best] - current)
        if self.fallback is None or shortfall < self.fallback[0]:
            self.fallback = [shortfall, cands[best].to_json(), sp, f1[best]]

    # -- variation ------------------------------------------------------------------------------------
    def _child(self, sp: int, avoid: set[str] | None = None) -> Genome:
        """Two parents from B(sp), uniform crossover, mutation; a child already seen is mutated
        again (generate_parents(), recombination(), mutation() and the loop in search())."""
        avoid = set(self.generated) if avoid is None else avoid
        a, b = self.rng.choice(self.B[sp], size=2, replace=False)
        pa = Genome.from_json(self.population[int(a)][0]).values()
        pb = Genome.from_json(self.population[int(b)][0]).values()
        vals = [x if self.rng.random() < self.crossover_p else y for x, y in zip(pa, pb)]
        p = mutation_probability(self.generation, self.G, self.phi0)
        vals = self._mutate(vals, p)
        for _ in range(self.NOVELTY_TRIES):
            child = Genome.from_values(vals)
            if not self.known(child) and child.key() not in avoid:
                return child
            vals = self._mutate(vals, p)
        return self.novel_random(avoid)

    def _mutate(self, vals: list, p: float) -> list:
        """Each variable with probability p takes a new value drawn with its learned selection
        probabilities, never the old one (Search/SaMEA_Algorithm.py, mutation())."""
        vals = list(vals)
        for k, var in enumerate(VARIABLES):
            choices = self.space.choices(var)
            if len(choices) < 2 or self.rng.random() >= p:
                continue
            w = np.array(self.value_probs[var], dtype=float)
            old = _index(choices, vals[k])
            if old is not None:
                w[old] = 0.0
            vals[k] = choices[int(self.rng.choice(len(choices), p=w / w.sum()))]
        return vals

    def selection_probabilities(self) -> dict[str, list[float]]:
        return {var: list(p) for var, p in self.value_probs.items()}

    # -- surrogate ---------------------------------------------------------------------------------------
    def _features(self, g: Genome) -> np.ndarray:
        """The 10 categorical value indices and log(params) (SurrogateRandomForest.py, TrainingData())."""
        idx = [_index(self.space.choices(var), v) for var, v in zip(VARIABLES, g.values())]
        return np.array([-1 if i is None else i for i in idx] + [self.f2_of(g)], dtype=float)

    def _surrogate_ready(self) -> bool:
        done = self.evaluated()
        if len(done) != self._fitted_on:
            target = [(F[0] - self.lo[0]) / self._scale()[0] for _, F in done]  # normalised f1
            self.surrogate.fit([g for g, _ in done], target, seed=self.seed)
            self._fitted_on = len(done)
        return self.surrogate.ready

    def _predict(self, genomes: list[Genome]) -> tuple[np.ndarray, np.ndarray]:
        """Forest mean (normalised f1) and std over its trees (PredictMeanStd())."""
        return self.surrogate.predict_mean_std(genomes)

    def _f1_of(self, normalised: float) -> float:
        return float(self.lo[0] + normalised * self._scale()[0])

    # -- decomposition ---------------------------------------------------------------------------------
    def _scale(self) -> np.ndarray:
        return np.maximum(self.hi - self.lo, 1e-12)

    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(ideal point, scale) of the normalisation.

        "fixed" (the authors, calculate_reference() / calculate_maxpoint()): f1 by its bounds,
        f2 by the smallest and largest network. "front" (rules: adaptive): min and range of the
        Pareto front of everything evaluated.
        """
        if self.rules.normalisation == "fixed":
            return self.lo, self._scale()
        return front_bounds(np.array([[f1, f2] for _, f1, f2 in self.history if f1 is not None], dtype=float))

    def _g(self, F: np.ndarray, i: int, bounds=None) -> np.ndarray:
        """PBI values of the rows of F for subproblem i, on normalised objectives."""
        ideal, scale = self._bounds() if bounds is None else bounds
        return pbi((np.atleast_2d(F) - ideal) / scale, self.weights[i], self.theta)

    def _g_of_member(self, j: int, bounds=None) -> float:
        m = self.population[j]
        if m is None or m[1] is None:
            return math.inf
        return float(self._g(np.array([[m[1], m[2]]]), j, bounds)[0])

    # -- protocol --------------------------------------------------------------------------------------
    def _ask(self, n: int) -> list[Genome]:
        out: list[Genome] = []
        while len(out) < n:
            if self.queue:
                item = self.queue.pop(0)
                self.inflight.append(item)
                out.append(Genome.from_json(item[0]))
            elif self.stage == "children" and self.slot < self.N:
                self._breed_slot()
            elif self.inflight or self.pending or not self._advance():
                break  # the step waits for results
        return out

    def _on_tell(self, genome: Genome, F: Objectives | None) -> None:
        js = genome.to_json()
        item = next((it for it in self.inflight if it[0] == js), None)
        if item is None:
            return  # not one of ours (e.g. told twice): the history has it already
        self.inflight.remove(item)
        _, i, predicted = item
        if self.stage == "init":
            self.population[i] = [js, None if F is None else F[0], None if F is None else F[1]]
            return
        if F is None:
            return
        if predicted is not None:
            self.batch_pairs.append([predicted, F[0]])
            self.pooled_pairs.append([predicted, F[0]])
        self.born.append([genome.key(), i])
        bounds = self._bounds()
        child = np.array([F])
        for j in self.B[i]:  # ReplaceOFSolution() for each neighbour it matches or beats
            if float(self._g(child, j, bounds)[0]) <= self._g_of_member(j, bounds):
                self.population[j] = [js, F[0], F[1]]

    def stats(self) -> dict:
        s = super().stats()
        s.update(
            rules=self.rules_name,
            phase="init" if self.stage == "init" else ("learning" if self.learning else "exploitation"),
            generation=self.generation,
            surrogate_screened=self.n_screened,
            surrogate_deferred=self.n_deferred,
            surrogate_rejected=self.n_rejected,
            surrogate_tau=self.taus[-1] if self.taus else None,
            surrogate_taus=list(self.taus),
            **pooled_tau(self.pooled_pairs),
        )
        return s

    def _own_state(self) -> dict:
        return {name: getattr(self, name) for name in STATE_FIELDS}

    def _load_own_state(self, d: dict) -> None:
        for name, read in STATE_FIELDS.items():
            setattr(self, name, read(d.get(name, [])) if name in OPTIONAL_FIELDS else read(d[name]))
        self._fitted_on = -1
