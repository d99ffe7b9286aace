"""The random-forest surrogate: genome encoding → predicted f1 (f2 is exact and free).

Refitted from the evaluation history whenever a strategy needs fresh predictions, with a
random_state derived from the strategy seed and the number of points, so a resumed search
rebuilds exactly the same forest without pickling it.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import kendalltau
from sklearn.ensemble import RandomForestRegressor

from medseg_nas.space.genome import Genome

MIN_POINTS = 4  # below this the forest is not trusted (strategies fall back to no screening)


class Surrogate:
    def __init__(self, n_trees: int = 200, seed: int = 0) -> None:
        self.n_trees = int(n_trees)
        self.seed = int(seed)
        self.model: RandomForestRegressor | None = None
        self.n_fitted = 0

    @property
    def ready(self) -> bool:
        return self.model is not None

    def fit(self, genomes: list[Genome], f1: list[float], seed: int | None = None) -> "Surrogate":
        """Refit on all points; `seed` (the strategy's, restored on resume) fixes the forest."""
        if seed is not None:
            self.seed = int(seed)
        if len(genomes) < MIN_POINTS:
            self.model, self.n_fitted = None, len(genomes)
            return self
        X = np.stack([g.encode() for g in genomes])
        self.model = RandomForestRegressor(
            n_estimators=self.n_trees, random_state=(self.seed * 100003 + len(genomes)) % (2**31), n_jobs=1
        )
        self.model.fit(X, np.asarray(f1, dtype=float))
        self.n_fitted = len(genomes)
        return self

    def predict(self, genomes: list[Genome]) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("surrogate not fitted")
        if not genomes:
            return np.zeros(0)
        return self.model.predict(np.stack([g.encode() for g in genomes]))


def kendall_tau(predicted, actual) -> float | None:
    """Rank agreement of predictions with true values; None when undefined (few or tied points)."""
    if len(predicted) < 3:
        return None
    tau = kendalltau(np.asarray(predicted, dtype=float), np.asarray(actual, dtype=float)).statistic
    return None if tau is None or not math.isfinite(tau) else float(tau)
