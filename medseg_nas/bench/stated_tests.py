"""The strategy comparison's tests, fixed before the run (issue 27): each variant against one
control (random search) on the final hypervolume, one-sided, Holm-corrected, with the power the
seeds achieved and the seeds a stated power would need.

Why a plan object: a test chosen after the results are seen is not a test. `bench_search.py`
writes the plan into its work directory at the first invocation and refuses to continue that work
directory under another plan (`check_plan`), so seeds added later are judged by the same rule.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np


@dataclasses.dataclass(frozen=True)
class StatedTests:
    """One-sided Mann–Whitney U of each variant's final HV against `control`'s ("greater": the
    variant finds the larger hypervolume), Holm's step-down correction over the family of
    variants, family-wise `alpha`. Power is estimated by resampling the observed final HVs."""

    control: str = "random"
    alpha: float = 0.05
    alternative: str = "greater"
    correction: str = "holm"
    power_target: float = 0.8
    power_resamples: int = 2000

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def holm(pvalues: dict[str, float]) -> dict[str, float]:
    """Holm (1979) adjusted p-values: the k-th smallest of m is multiplied by (m - k + 1), made
    monotone, capped at 1. Rejecting where the adjusted p < alpha is Holm's step-down procedure."""
    names = sorted(pvalues, key=lambda n: pvalues[n])
    m, out, running = len(names), {}, 0.0
    for k, n in enumerate(names):
        running = max(running, min(1.0, (m - k) * pvalues[n]))
        out[n] = running
    return out


def _p_one_sided(a, b, alternative: str) -> float:
    from scipy.stats import mannwhitneyu

    if np.ptp(np.concatenate([a, b])) == 0:  # all equal: no evidence either way
        return 1.0
    return float(mannwhitneyu(a, b, alternative=alternative).pvalue)


def resampled_power(a, b, level: float, n: int | None, alternative: str, resamples: int, rng) -> float:
    """Fraction of resampled experiments (n seeds per group drawn with replacement from the
    observed final HVs; n = the observed sizes if None) in which the test rejects at `level`."""
    from scipy.stats import mannwhitneyu

    a, b = np.asarray(a, float), np.asarray(b, float)
    na, nb = (len(a), len(b)) if n is None else (n, n)
    A, B = rng.choice(a, (resamples, na)), rng.choice(b, (resamples, nb))
    # resampling with replacement makes ties, where the exact null distribution does not hold:
    # the normal approximation with tie correction, all resamples at once
    with np.errstate(invalid="ignore", divide="ignore"):
        p = mannwhitneyu(A, B, alternative=alternative, method="asymptotic", axis=1).pvalue
    p = np.where(np.isfinite(p), p, 1.0)  # a resample of all-equal values rejects nothing
    return float(np.mean(p < level))


N_GRID = (5, 10, 15, 20, 30, 40, 60, 80, 100)


def versus_control(finals: dict[str, list[float]], plan: StatedTests, seed: int = 0) -> dict:
    """The stated tests on final HVs per variant. Power uses Bonferroni's level alpha / m, a lower
    bound on Holm's power (Holm rejects whatever Bonferroni rejects); `seeds_for_power` is the
    smallest n of N_GRID at which that resampled power reaches `power_target` (None: not by 100)."""
    if plan.control not in finals:
        return {"plan": plan.to_dict(), "error": f"control variant {plan.control!r} was not run"}
    ctrl = np.asarray(finals[plan.control], float)
    others = [n for n in finals if n != plan.control]
    rng = np.random.default_rng(seed)
    raw = {n: _p_one_sided(np.asarray(finals[n], float), ctrl, plan.alternative) for n in others}
    adjusted = holm(raw) if plan.correction == "holm" else {n: min(1.0, p * len(raw)) for n, p in raw.items()}
    level = plan.alpha / max(1, len(others))
    per = {}
    for n in others:
        a = np.asarray(finals[n], float)
        diff = a[:, None] - ctrl[None, :]
        a12 = float(np.mean(diff > 0) + 0.5 * np.mean(diff == 0))  # P(variant > control), Vargha–Delaney A
        power = resampled_power(a, ctrl, level, None, plan.alternative, plan.power_resamples, rng)
        need = None
        if power < plan.power_target:
            for k in N_GRID:
                if k > min(len(a), len(ctrl)) and resampled_power(a, ctrl, level, k, plan.alternative,
                                                                   plan.power_resamples, rng) >= plan.power_target:
                    need = k
                    break
        else:
            need = min(len(a), len(ctrl))
        per[n] = {"n": len(a), "n_control": len(ctrl), "mean_diff": round(float(a.mean() - ctrl.mean()), 5),
                  "a12": round(a12, 3), "p": round(raw[n], 5), "p_adjusted": round(adjusted[n], 5),
                  "reject": adjusted[n] < plan.alpha, "power": round(power, 3), "seeds_for_power": need}
    return {"plan": plan.to_dict(), "bonferroni_level_for_power": level, "per_variant": per}


def trials_to_target(curves: list[list[float]], target: float, budget: int) -> dict:
    """Trials each seed needed to reach `target` HV, over *all* seeds: a seed that never reaches it
    counts as the budget (a lower bound on its true count, so the mean is one too). The mean over
    the seeds that reached it is kept for older records' tables; it is not the figure to quote."""
    hits = [next((i + 1 for i, h in enumerate(c) if h >= target - 1e-12), None) for c in curves]
    reached = [h for h in hits if h is not None]
    counted = [h if h is not None else budget for h in hits]
    return {"trials_to_target": hits, "reached": len(reached), "n": len(hits),
            "mean_trials_all_seeds": round(float(np.mean(counted)), 1) if counted else None,
            "median_trials_all_seeds": float(np.median(counted)) if counted else None,
            "censored_at_budget": len(hits) - len(reached),
            "mean_trials_if_reached": round(float(np.mean(reached)), 1) if reached else None}


def paired_trials_to_target(variant: dict[int, list[float]], target: dict[int, list[float]], budget: int) -> dict:
    """Per seed, the trials `variant` needs to reach the *same seed's* `target` final HV, against the
    trials `target` needs to reach its own final HV; an unreached seed counts as the budget. The
    issue's LS-PON target reads the ratio of the sums (≤ 0.7: the same front in ≤ 70 % of the
    trials). Only seeds both variants ran are paired."""
    seeds = sorted(set(variant) & set(target))
    mine, theirs = [], []
    for s in seeds:
        goal = target[s][-1] if target[s] else 0.0
        mine.append(trials_to_target([variant[s]], goal, budget)["trials_to_target"][0])
        theirs.append(trials_to_target([target[s]], goal, budget)["trials_to_target"][0])
    counted = [m if m is not None else budget for m in mine]
    own = [t if t is not None else budget for t in theirs]
    return {"seeds": seeds, "trials": mine, "target_trials": theirs, "reached": sum(m is not None for m in mine),
            "sum_trials": sum(counted), "sum_target_trials": sum(own),
            "ratio": round(sum(counted) / sum(own), 3) if seeds and sum(own) else None}


def check_plan(work_dir: Path, plan: StatedTests) -> None:
    """Write the plan at a work directory's first run; refuse another plan later."""
    path = Path(work_dir) / "stated_tests.json"
    if path.is_file():
        old = json.loads(path.read_text())
        if old != plan.to_dict():
            raise SystemExit(f"{path}: this work directory's tests were stated as {old}; "
                             f"the run asks for {plan.to_dict()}. Use a new --work-dir for another plan.")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(plan.to_dict(), indent=2))
