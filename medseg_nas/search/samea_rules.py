"""The authors' SaMEA rules as small pure functions (weight vectors, PBI, the learned
probabilities, NSGA-II selection, deferred training, initial population).

Kept apart from the `SaMEA` strategy's bookkeeping so that each rule can be read and tested
against the authors' code on its own (GitHub mariabaldeon/EMONAS, Search/SaMEA_Algorithm.py and
Search/SurrogateRandomForest.py); each function names the one it reproduces.

`search.samea.rules: adaptive` switches four rules to the earlier implementation's choices
(same module, same state): θ = adaptive_theta (5), weight vectors over the whole simplex,
objectives normalised by the ideal and nadir of the evaluated Pareto front, and screening of
`screen_candidates` children per slot, of which the best is trained only if its predicted g
beats its own subproblem's current solution (if a generation trains nothing, the candidate
closest to passing is trained). Initialisation, mating, mutation and the learned probabilities
are the paper's in both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
from scipy.stats import qmc

from medseg_nas.search.archive import pareto_front
from medseg_nas.space.genome import VARIABLES, Genome, SearchSpace, _same

N_VARIABLES = len(VARIABLES)


@dataclass(frozen=True)
class Rules:
    """The rules that `search.samea.rules` switches (see the module docstring)."""

    weights: str  # "half": w1 ∈ [w1_min, 1] | "simplex": w1 ∈ [0, 1]
    normalisation: str  # "fixed": by the bounds of the space | "front": by the evaluated front
    screening: str  # "neighbours": one child vs any neighbour, deferred | "batch": best of many vs own


RULES = {
    "paper": Rules("half", "fixed", "neighbours"),
    "adaptive": Rules("simplex", "front", "batch"),
}


def weight_vectors(N: int, w1_min: float) -> np.ndarray:
    """N weight vectors (w1, 1 − w1) with w1 = w1_min + i·(1 − w1_min)/(N − 1), i = 0..N−1.

    Search/SaMEA_Algorithm.py, generate_weight_vectors() (w1_min = 0.5: only the accuracy-leaning
    half of the simplex; w1 weights f1). The last vector is (1, 0).
    """
    w1 = w1_min + np.arange(N) * (1.0 - w1_min) / (N - 1)
    return np.stack([w1, 1.0 - w1], axis=1)


def neighbourhoods(W: np.ndarray, T: int) -> list[list[int]]:
    """For each weight vector the indices of its T nearest (Euclidean, itself included).

    Search/SaMEA_Algorithm.py, compute_neighbors(); ties go to the lower index.
    """
    dist = np.linalg.norm(W[:, None, :] - W[None, :, :], axis=-1)
    return [[int(k) for k in np.argsort(dist[i], kind="stable")[:T]] for i in range(len(W))]


def pbi(F: np.ndarray, w: np.ndarray, theta: float) -> np.ndarray:
    """g = d1 + θ·d2 of the rows of F (normalised, ideal point at 0) for weight vector w.

    d1 = |Fᵀw|/|w|, d2 = |F − d1·w/|w||: Search/SaMEA_Algorithm.py, calculate_BI().
    """
    F = np.atleast_2d(np.asarray(F, dtype=float))
    u = np.asarray(w, dtype=float) / np.linalg.norm(w)
    d1 = np.abs(F @ u)
    d2 = np.linalg.norm(F - d1[:, None] * u[None, :], axis=1)
    return d1 + theta * d2


def mutation_probability(g: int, G: int, phi0: float, n: int = N_VARIABLES) -> float:
    """p(g) = max(φ0·(1 − ln(g + 1)/ln G), 1/n) for generation g ≥ 1.

    Search/SaMEA_Algorithm.py, mutation_prob() (called with gen = g + 1): about 0.81 in
    generation 1 with φ0 = 1, G = 40, decaying to the floor 1/n = 0.1.
    """
    return max(phi0 * (1.0 - math.log(g + 1) / math.log(G)), 1.0 / n)


def value_probabilities(f1_by_value: list[list[float]], f1_max: float, smoothing: float) -> list[float]:
    """Selection probabilities of a variable's K values from the f1 of networks using each.

    Merit of value j = f1_max − mean f1 of the networks with that value (0 if none), as shares
    of the total, plus smoothing/K, renormalised: Search/SaMEA_Algorithm.py,
    UpdateHyperSelProb() and ComputeSelectProbHyper(). Merits are clipped at 0 (f1 ≤ f1_max).
    """
    K = len(f1_by_value)
    merit = np.array([max(f1_max - float(np.mean(v)), 0.0) if v else 0.0 for v in f1_by_value])
    share = merit / merit.sum() if merit.sum() > 0 else np.zeros(K)
    p = share + smoothing / K
    return [float(x) for x in p / p.sum()]


def subproblem_probabilities(success: list[float], smoothing: float) -> list[float]:
    """Selection probabilities of the N subproblems from their cumulative NSGA-II-best counts.

    Share of the children each subproblem produced that were among the best N (by NSGA-II
    ranking) at the end of their generation, plus smoothing/N, renormalised:
    Search/SaMEA_Algorithm.py, UpdateSubproblemSelProb().
    """
    s = np.asarray(success, dtype=float)
    share = s / s.sum() if s.sum() > 0 else np.zeros(len(s))
    p = share + smoothing / len(s)
    return [float(x) for x in p / p.sum()]


def best_n_nsga2(F: np.ndarray, n: int) -> list[int]:
    """Indices of the best n rows of F by NSGA-II ranking (fronts, then crowding distance).

    The authors use pygmo's select_best_N_mo (Search/SaMEA_Algorithm.py, BestSolutionsNSGA());
    this is pymoo's non-dominated sorting and crowding distance, ties to the earlier row.
    """
    F = np.asarray(F, dtype=float).reshape(-1, 2)
    if len(F) <= n:
        return list(range(len(F)))
    out: list[int] = []
    for front in NonDominatedSorting().do(F):
        front = [int(i) for i in sorted(front)]
        if len(out) + len(front) <= n:
            out.extend(front)
            if len(out) == n:
                break
            continue
        cd = calc_crowding_distance(F[front])
        order = np.argsort(-cd, kind="stable")
        out.extend(front[int(k)] for k in order[: n - len(out)])
        break
    return out


def deferred_to_train(trained_F: np.ndarray, cand_F: np.ndarray, cand_std: np.ndarray) -> list[int]:
    """Which deferred children the end of a generation trains (indices into the candidates).

    Those on the Pareto front of trained ∪ candidates (candidates at their predicted f1), then of
    the rest the lowest predicted f1, then of the rest the highest tree std:
    Search/SaMEA_Algorithm.py, ReturnCandidatesToTrain(). Returned in candidate order.
    """
    cand_F = np.asarray(cand_F, dtype=float).reshape(-1, 2)
    trained_F = np.asarray(trained_F, dtype=float).reshape(-1, 2)
    n_t = len(trained_F)
    allF = np.vstack([trained_F, cand_F])
    front = NonDominatedSorting().do(allF, only_non_dominated_front=True)
    picked = sorted(int(i) - n_t for i in front if int(i) >= n_t)
    rest = [k for k in range(len(cand_F)) if k not in picked]
    if rest:
        k = min(rest, key=lambda k: (cand_F[k, 0], k))
        picked.append(k)
        rest.remove(k)
    if rest:
        k = max(rest, key=lambda k: (float(cand_std[k]), -k))
        picked.append(k)
    return sorted(picked)


def latin_hypercube_genomes(space: SearchSpace, n: int, seed: int) -> list[Genome]:
    """n genomes from a seeded Latin hypercube over the 10 variables, decoded through uniform
    cumulative probabilities (value index = ⌊u·K⌋).

    Search/SaMEA_Algorithm.py, search() (lhsmdu.sample) and ReturnInitialGene().
    """
    U = qmc.LatinHypercube(d=N_VARIABLES, seed=seed).random(n)
    out = []
    for row in U:
        vals = []
        for u, var in zip(row, VARIABLES):
            ch = space.choices(var)
            vals.append(ch[min(int(u * len(ch)), len(ch) - 1)])
        out.append(Genome.from_values(vals))
    return out


def largest_genome(space: SearchSpace, f2_of: Callable[[Genome], float]) -> Genome:
    """The largest network of the space: most levels and filters, its largest op everywhere.

    Search/SaMEA_Algorithm.py, calculate_maxpoint() (there: 9 cells, 16 filters, conv3d 5×5×5).
    """
    small = Genome.smallest(space)

    def at(op: str) -> Genome:
        return Genome(inputs=(0, 1, 2), ops=(op,) * 4, n_c=max(space.n_c), n_f=max(space.n_f), lr=small.lr)

    # the op is ranked by parameters (the same order as any f2 of the space: the op with most
    # weights also has the most MACs and latency), so a measured f2 (latency) is taken only once
    from medseg_nas.space.network import count_parameters

    return max((at(op) for op in space.ops), key=lambda g: count_parameters(g, 1, 2))


def _index(choices: tuple, value) -> int | None:
    return next((k for k, c in enumerate(choices) if _same(c, value)), None)


# -- the strategy -------------------------------------------------------------------------------


def f1_by_value(rows: list[tuple[list, float]], k: int, choices: tuple) -> list[list[float]]:
    """The f1 values of the evaluated genomes grouped by the value of variable k (the input of
    value_probabilities)."""
    by_value: list[list[float]] = [[] for _ in choices]
    for vals, f1 in rows:
        j = _index(choices, vals[k])
        if j is not None:
            by_value[j].append(f1)
    return by_value


def front_bounds(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ideal, scale) of the Pareto front of the evaluated objectives F (rules "adaptive")."""
    F = F.reshape(-1, 2)
    if not len(F):
        return np.zeros(2), np.ones(2)
    front = F[pareto_front(F)]
    ideal = front.min(axis=0)
    return ideal, np.maximum(front.max(axis=0) - ideal, 1e-6)
