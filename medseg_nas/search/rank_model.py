"""Our two-objective adaptation of LS-PON's neighbour-ordering model: ridge regression on one-hot
encoded decision variables predicting the normalised Pareto rank. The published LS-PON (Zouambi,
thesis ch. 3) is a single-objective linear regression; the Pareto-rank target, the ridge penalty
and fixing the order once per selected solution (dmls.py) are ours, and are not the thesis's.

Why a rank and not f1: the rank scores a solution on both objectives at once, so "predicted to
be good" means "predicted to sit near the front", which is what a local search moving along the
front needs. Why linear on one-hot variables: each value of each variable gets one additive
weight, which a handful of evaluations can already estimate (the forest needs more points).

The target of an evaluated solution is its non-dominated rank among all evaluated solutions
(0 = on the front, 1 = the next front, ...) divided by the largest rank, so it lies in [0, 1]
whatever the number of points. Ridge regression (scikit-learn) keeps the fit defined when there
are fewer points than one-hot columns; it is deterministic, so a resumed search refits the same
model from the history and nothing is pickled.
"""

from __future__ import annotations

import math

import numpy as np
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
from sklearn.linear_model import Ridge
from sklearn.preprocessing import OneHotEncoder

from medseg_nas.search.surrogate import predict_genomes
from medseg_nas.space.genome import VARIABLES, Genome, SearchSpace

MIN_POINTS = 4  # below this the model is not trusted (neighbours keep their random order)


def normalised_ranks(F) -> np.ndarray:
    """Non-dominated rank of each row of F (n×2, minimised) divided by the largest rank: [0, 1]."""
    F = np.asarray(F, dtype=float).reshape(-1, 2)
    if len(F) == 0:
        return np.zeros(0)
    fronts = NonDominatedSorting().do(F)
    rank = np.zeros(len(F))
    for r, idx in enumerate(fronts):
        rank[np.asarray(idx, dtype=int)] = r
    top = rank.max()
    return rank / top if top > 0 else rank


def _value_index(choices: tuple, value) -> int:
    """Index of `value` in `choices`; -1 (an all-zero one-hot block) for a value outside the space."""
    for i, c in enumerate(choices):
        if (isinstance(c, float) and math.isclose(c, float(value), rel_tol=1e-6)) or c == value:
            return i
    return -1


class LinearRankModel:
    """Ridge regression of the normalised Pareto rank on one-hot decision variables."""

    def __init__(self, space: SearchSpace, alpha: float = 1.0) -> None:
        self.space = space
        self.alpha = float(alpha)
        cats = [np.arange(len(space.choices(v))) for v in VARIABLES]
        self.encoder = OneHotEncoder(categories=cats, handle_unknown="ignore", dtype=float)
        self.encoder.fit(np.zeros((1, len(VARIABLES)), dtype=int))
        self.model: Ridge | None = None
        self.n_fitted = 0

    @property
    def ready(self) -> bool:
        return self.model is not None

    def encode(self, genomes: list[Genome]) -> np.ndarray:
        """One column per (variable, value) of the space: the value indices one-hot encoded."""
        idx = np.array([[_value_index(self.space.choices(v), x) for v, x in zip(VARIABLES, g.values())] for g in genomes])
        return self.encoder.transform(idx.reshape(-1, len(VARIABLES))).toarray()

    def fit(self, genomes: list[Genome], F) -> "LinearRankModel":
        """Refit on all evaluated (genome, (f1, f2)); unready below MIN_POINTS."""
        self.n_fitted = len(genomes)
        if len(genomes) < MIN_POINTS:
            self.model = None
            return self
        self.model = Ridge(alpha=self.alpha).fit(self.encode(genomes), normalised_ranks(F))
        return self

    def predict(self, genomes: list[Genome]) -> np.ndarray:
        """Predicted normalised rank (lower = nearer the front)."""
        return predict_genomes(self.model, self.encode, genomes, "rank model")
