"""The random-forest surrogate: genome features → predicted f1 (f2 is exact and free).

Refitted from the evaluation history whenever a strategy needs fresh predictions, with a
random_state derived from the strategy seed and the number of points, so a resumed search
rebuilds exactly the same forest without pickling it.

The features default to `Genome.encode()` (one-hot; DMLS's forest ordering). SaMEA passes the
authors' inputs instead (Search/SurrogateRandomForest.py, TrainingData(): the 10 categorical
value indices plus log(params)) and reads the forest's uncertainty as the standard deviation of
the trees' predictions (PredictMeanStd()).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from scipy.stats import kendalltau
from sklearn.ensemble import RandomForestRegressor

from medseg_nas.space.genome import Genome

MIN_POINTS = 4  # below this the forest is not trusted (strategies fall back to no screening)


def predict_genomes(model, encode: Callable[[list[Genome]], np.ndarray], genomes: list[Genome], what: str) -> np.ndarray:
    """A fitted scikit-learn model's predictions for genomes (an empty list → an empty array)."""
    if model is None:
        raise RuntimeError(f"{what} not fitted")
    if not genomes:
        return np.zeros(0)
    return model.predict(encode(genomes))


class Surrogate:
    def __init__(
        self,
        n_trees: int = 200,
        seed: int = 0,
        min_samples_split: int = 2,
        features: Callable[[Genome], np.ndarray] | None = None,
    ) -> None:
        self.n_trees = int(n_trees)
        self.seed = int(seed)
        self.min_samples_split = int(min_samples_split)
        self.features = features or (lambda g: g.encode())
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
        X = self._X(genomes)
        self.model = RandomForestRegressor(
            n_estimators=self.n_trees,
            min_samples_split=self.min_samples_split,
            random_state=(self.seed * 100003 + len(genomes)) % (2**31),
            n_jobs=1,
        )
        self.model.fit(X, np.asarray(f1, dtype=float))
        self.n_fitted = len(genomes)
        return self

    def predict(self, genomes: list[Genome]) -> np.ndarray:
        return predict_genomes(self.model, self._X, genomes, "surrogate")

    def predict_mean_std(self, genomes: list[Genome]) -> tuple[np.ndarray, np.ndarray]:
        """Forest mean and the standard deviation over its trees (the authors' uncertainty)."""
        if self.model is None:
            raise RuntimeError("surrogate not fitted")
        if not genomes:
            return np.zeros(0), np.zeros(0)
        X = np.ascontiguousarray(self._X(genomes), dtype=np.float32)  # what the forest feeds its trees
        per_tree = np.stack([tree.predict(X, check_input=False) for tree in self.model.estimators_])
        return per_tree.mean(axis=0), per_tree.std(axis=0)

    def _X(self, genomes: list[Genome]) -> np.ndarray:
        return np.stack([np.asarray(self.features(g), dtype=float) for g in genomes])


def kendall_tau(predicted, actual) -> float | None:
    """Rank agreement of predictions with true values; None when undefined (few or tied points)."""
    if len(predicted) < 3:
        return None
    tau = kendalltau(np.asarray(predicted, dtype=float), np.asarray(actual, dtype=float)).statistic
    return None if tau is None or not math.isfinite(tau) else float(tau)


def pooled_tau(pairs) -> dict:
    """Kendall τ over every (predicted, measured) pair of a run, with its n: the surrogate's
    ranking skill from all its predictions at once. Per-generation τ over 3-4 screened children can
    only be ±1, ±1/3 or 0; the pooled figure is the one with a sample size behind it."""
    pairs = [p for p in pairs if p[0] is not None and p[1] is not None]
    return {"surrogate_tau_pooled": kendall_tau([p[0] for p in pairs], [p[1] for p in pairs]) if len(pairs) >= 3 else None,
            "surrogate_pairs": len(pairs), "surrogate_pair_values": [[float(a), float(b)] for a, b in pairs]}


def within_run_tau(runs) -> dict:
    """Kendall τ over many runs' (predicted, measured) pairs, each pair compared only with pairs of
    its own run: (concordant − discordant) / comparable, summed over runs (ties skipped). A 14-trial
    SaMEA run makes ~2 predictions, too few for a τ of its own; pooling the pairs of different runs
    into one τ would rank one run's forest against another's, whose scales differ. The sign test
    (two-sided binomial, concordant against discordant) says whether the ranking beats a coin."""
    from scipy.stats import binomtest

    con = dis = used = 0
    for pairs in runs:
        pairs = [p for p in (pairs or []) if p[0] is not None and p[1] is not None]
        used += len(pairs) >= 2
        for i in range(len(pairs)):
            for j in range(i + 1, len(pairs)):
                s = np.sign(pairs[i][0] - pairs[j][0]) * np.sign(pairs[i][1] - pairs[j][1])
                con, dis = con + (s > 0), dis + (s < 0)
    n = int(con + dis)
    return {"tau": round((con - dis) / n, 4) if n else None, "comparable": n, "concordant": int(con),
            "discordant": int(dis), "runs": int(used),
            "sign_test_p": round(float(binomtest(int(con), n).pvalue), 4) if n else None}

