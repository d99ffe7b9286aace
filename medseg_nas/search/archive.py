"""Pareto front, hypervolume and knee point of (f1, f2) points, both minimised.

Shared by the strategies, the runner's live output, retrain's `--pick knee` and the benchmarks,
so every place that says "the front" or "the hypervolume" means the same thing.

Reference-point rule: hypervolume is measured in a fixed box `[ideal, ref]` that depends only on
the config and the search space (`search.objectives.reference_box`: f1 ∈ [0, (α+1)·C + β], f2 between
log-params of the smallest and the largest network of the space, plus 5 %), and reported as a
fraction of that box. A fixed box keeps numbers comparable across trials, resumed sessions,
strategies and seeds; a box fitted to the data would not be.
"""

from __future__ import annotations

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting


def dominates(a, b) -> bool:
    """Pareto dominance for minimisation: a is no worse everywhere and better somewhere."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return bool(np.all(a <= b) and np.any(a < b))


def pareto_front(F) -> np.ndarray:
    """Indices of the non-dominated rows of F (n×2); of identical points only the first is kept."""
    F = np.asarray(F, dtype=float).reshape(-1, 2)
    if len(F) == 0:
        return np.zeros(0, dtype=int)
    idx = NonDominatedSorting().do(F, only_non_dominated_front=True)
    seen, out = set(), []
    for i in sorted(int(i) for i in idx):
        t = tuple(F[i])
        if t not in seen:
            seen.add(t)
            out.append(i)
    return np.asarray(sorted(out, key=lambda i: (F[i, 1], F[i, 0])), dtype=int)


def hypervolume(F, ref) -> float:
    """Hypervolume dominated by F up to the reference point `ref` (pymoo); points beyond ref add 0."""
    F = np.asarray(F, dtype=float).reshape(-1, 2)
    ref = np.asarray(ref, dtype=float)
    F = F[np.all(F < ref, axis=1)]
    if len(F) == 0:
        return 0.0
    return float(HV(ref_point=ref).do(F))


def normalised_hypervolume(F, ideal, ref) -> float:
    """Hypervolume of F inside the box [ideal, ref] as a fraction of the box (0..1)."""
    ideal, ref = np.asarray(ideal, dtype=float), np.asarray(ref, dtype=float)
    scale = np.maximum(ref - ideal, 1e-12)
    F = (np.asarray(F, dtype=float).reshape(-1, 2) - ideal) / scale
    return hypervolume(np.maximum(F, 0.0), np.ones(2))


def knee_point(F) -> int:
    """Index (into F) of the knee of the front of F.

    Objectives are scaled to [0, 1] over the front. Where the front bulges towards the ideal
    point, the knee is the front point farthest from the straight line through the two extreme
    points (Das 1999; the usual "bend" of a 2-objective trade-off). Where no point lies on the
    ideal side of that line (a straight or concave front, common with few trials), that rule
    would return an extreme — the smallest network — so the knee is instead the point nearest
    to the diagonal ray from the ideal point (PBI's d2 for equal weights): the balanced
    trade-off. With one or two front points it is the one with the lower f1 (the more accurate).
    """
    F = np.asarray(F, dtype=float).reshape(-1, 2)
    if len(F) == 0:
        raise ValueError("knee_point of an empty set")
    front = pareto_front(F)
    P = F[front]
    if len(P) <= 2:
        return int(front[int(np.argmin(P[:, 0]))])
    lo, hi = P.min(axis=0), P.max(axis=0)
    S = (P - lo) / np.maximum(hi - lo, 1e-12)
    a, b = S[np.argmin(S[:, 1])], S[np.argmax(S[:, 1])]  # the extremes (by f2)
    d = b - a
    norm = max(float(np.hypot(*d)), 1e-12)
    signed = (d[0] * (S[:, 1] - a[1]) - d[1] * (S[:, 0] - a[0])) / norm
    ideal_side = np.sign(d[0] * (0.0 - a[1]) - d[1] * (0.0 - a[0])) or 1.0
    bulge = signed * ideal_side
    if bulge.max() > 1e-6:
        return int(front[int(np.argmax(bulge))])
    diag = np.array([1.0, 1.0]) / np.sqrt(2.0)
    d2 = np.linalg.norm(S - np.outer(S @ diag, diag), axis=1)
    return int(front[int(np.argmin(d2))])
