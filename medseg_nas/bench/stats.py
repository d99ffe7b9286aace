"""The statistics the benchmarks state their claims with: Kendall tau of a proxy against test
Dice, bootstrapped Kendall tau tables, percentile-bootstrap intervals (one sample, and paired per case), and a learning curve's plateau."""

from __future__ import annotations

import numpy as np
from scipy.stats import kendalltau


TAU_BAR = 0.5


def _tau_pair(entries: list[dict]) -> dict:
    test = [e["test_mean_dice"] for e in entries]
    out = {}
    for name, proxy in (("neg_f1", [-e["f1"] for e in entries]), ("search_val_dice", [e["search_val_dice"] for e in entries])):
        tau, p = kendalltau(proxy, test)
        out[name] = {"tau": None if np.isnan(tau) else round(float(tau), 3), "p": None if np.isnan(p) else round(float(p), 4)}
    return out


def taus(entries: list[dict]) -> dict:
    ok = [e for e in entries if e.get("test_mean_dice") is not None]
    out = {"n": len(ok), "bar": TAU_BAR}
    if len(ok) < 3:
        return out
    out.update(_tau_pair(ok))
    out["met"] = bool((out["neg_f1"]["tau"] or -1) >= TAU_BAR)
    # a trial that learned nothing in the search (validation Dice 0, e.g. all-identity cells) is an easy
    # concordant pair with every other genome: tau without them says how well the proxy ranks the rest
    learned = [e for e in ok if (e.get("search_val_dice") or 0.0) > 0.0]
    if 3 <= len(learned) < len(ok):
        out["learned_only"] = {"n": len(learned), **_tau_pair(learned)}
    return out


RESAMPLES = 10_000
LEVEL = 0.95


def _tau(x, y) -> float:
    return float(kendalltau(np.asarray(x, float), np.asarray(y, float)).statistic)


def tau_table(rows: list[dict], target: str, keys, seed: int = 0, resamples: int = 2000, min_n: int = 4) -> dict:
    """Kendall tau of each of `keys` against `target` over `rows`, each with a 95 % percentile
    bootstrap over rows, and each pair's difference bootstrapped on the same resamples (one key ranks
    the target better than another if that interval excludes 0). Fewer than `min_n` rows: no tau."""
    rows = [r for r in rows if all(r.get(k) is not None for k in (*keys, target))]
    n = len(rows)
    out: dict = {"n": n, "target": target}
    if n < min_n:
        return out
    y = np.array([r[target] for r in rows], float)
    cols = {k: np.array([r[k] for r in rows], float) for k in keys}
    rng = np.random.default_rng(seed)
    draws = {k: [] for k in keys}
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        if len(set(idx.tolist())) < 3:
            continue
        for k in keys:
            draws[k].append(_tau(cols[k][idx], y[idx]))
    draws = {k: np.array(v) for k, v in draws.items()}

    def interval(v: np.ndarray) -> list[float] | None:
        v = v[~np.isnan(v)]
        if not v.size:  # a constant column: no τ in any resample
            return None
        return [round(float(np.percentile(v, 2.5)), 3), round(float(np.percentile(v, 97.5)), 3)]

    def point(t: float) -> float | None:
        return None if np.isnan(t) else round(float(t), 3)

    for k in keys:
        out[k] = {"tau": point(_tau(cols[k], y)), "ci95": interval(draws[k])}
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            d = draws[a] - draws[b]
            ta, tb = out[a]["tau"], out[b]["tau"]
            out[f"{a}_minus_{b}"] = {"tau": None if ta is None or tb is None else round(ta - tb, 3), "ci95": interval(d)}
    return out


def bootstrap_means(values: np.ndarray, groups: list[str] | None, seed: int = 0) -> tuple[np.ndarray, dict]:
    """RESAMPLES bootstrap means of `values`, resampling cases, or with `groups` (one label per
    case) whole groups: the two frames of one ACDC patient are not independent, and resampling
    them apart gives a narrower interval than the data supports (the cluster bootstrap)."""
    rng = np.random.default_rng(seed)
    if groups is None or len(set(groups)) == len(values):
        idx = rng.integers(0, len(values), size=(RESAMPLES, len(values)))
        return values[idx].mean(axis=1), {"unit": "case"}
    names = sorted(set(groups))
    at = {g: i for i, g in enumerate(names)}
    sums, counts = np.zeros(len(names)), np.zeros(len(names))
    for v, g in zip(values, groups):
        sums[at[g]] += v
        counts[at[g]] += 1
    idx = rng.integers(0, len(names), size=(RESAMPLES, len(names)))
    return sums[idx].sum(axis=1) / counts[idx].sum(axis=1), {"unit": "group", "n_groups": len(names)}


def paired_interval(diffs: np.ndarray, seed: int = 0, groups: list[str] | None = None) -> dict:
    """Mean of per-case differences and its percentile-bootstrap interval over cases (or groups)."""
    diffs = np.asarray(diffs, dtype=float)
    means, unit = bootstrap_means(diffs, groups, seed)
    lo, hi = np.quantile(means, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return {"mean": round(float(diffs.mean()), 4), "low": round(float(lo), 4), "high": round(float(hi), 4),
            "n_cases": int(len(diffs)), **unit, "level": LEVEL, "resamples": RESAMPLES}


def compare(runs: dict[str, dict[int, dict]], against: str = "full", groups: dict[str, str] | None = None) -> dict:
    """Paired per-case differences (space - `against`) per class, Dice averaged over each space's
    seeds first; only the cases every run scored, so the pairs are the same test cases. With
    `groups` ({case: group}) the interval resamples whole groups (see bootstrap_means)."""
    if against not in runs or not runs[against]:
        return {}
    case_sets = [set(d) for seeds in runs.values() for d in seeds.values()]
    cases = sorted(set.intersection(*case_sets))
    # the figures every row has: rows scored before a figure existed (e.g. mean_largest_component) lack it
    classes = sorted(set.intersection(*[set(c) for seeds in runs.values() for d in seeds.values() for c in d.values()]))

    def seed_mean(space: str) -> np.ndarray:  # cases x classes
        return np.mean([[[d[c][k] for k in classes] for c in cases] for d in runs[space].values()], axis=0)

    base = seed_mean(against)
    out = {}
    for space in runs:
        if space == against or not runs[space]:
            continue
        diff = seed_mean(space) - base
        labels = [groups.get(c, c) for c in cases] if groups else None
        out[f"{space}-{against}"] = {k: paired_interval(diff[:, j], groups=labels) for j, k in enumerate(classes)}
        out[f"{space}-{against}"]["verdict"] = verdict(out[f"{space}-{against}"]["mean"], against)
    return out


def verdict(iv: dict, against: str = "full") -> str:
    if iv["high"] < 0:
        return f"lower than {against}: the interval excludes 0"
    if iv["low"] > 0:
        return f"higher than {against}: the interval excludes 0"
    return "no difference shown: the interval contains 0"


def plateau_epoch(val: list[float], tol: float) -> int:
    """First epoch (1-based) after which the running best never rises by more than `tol`."""
    best, at = -1.0, 1
    for e, v in enumerate(val, start=1):
        if v > best + tol:
            at = e
        best = max(best, v)
    return at


def mean_dice_ci(cases: list[dict], level: float = 0.95, groups: dict[str, str] | None = None) -> dict:
    """Bootstrap interval of the test-split mean Dice: how far 21 cases can be from the population.

    The target (0.89) is nnU-Net's mean on the MSD leaderboard's own test cases, not on this split,
    so whether a gap is larger than the split's sampling error is part of the answer. With `groups`
    ({case id: group}, e.g. ACDC's patient of each frame) whole groups are resampled.
    """
    scored = [c for c in cases if c.get("mean_dice") is not None]
    per_case = np.array([float(c["mean_dice"]) for c in scored])
    if len(per_case) < 3:
        return {}
    labels = [groups.get(str(c["id"]), str(c["id"])) for c in scored] if groups else None
    if labels is None or len(set(labels)) == len(labels):
        from scipy.stats import bootstrap  # the records' intervals before groups existed: kept as they were

        res = bootstrap((per_case,), np.mean, confidence_level=level, n_resamples=RESAMPLES, method="percentile",
                        random_state=0)
        low, high, unit = res.confidence_interval.low, res.confidence_interval.high, {"unit": "case"}
    else:
        means, unit = bootstrap_means(per_case, labels)
        low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return {"level": level, "low": round(float(low), 4), "high": round(float(high), 4),
            "per_case_std": round(float(per_case.std(ddof=1)), 4), "n_cases": int(len(per_case)), **unit,
            "method": f"percentile bootstrap over {'groups of cases' if unit['unit'] == 'group' else 'cases'}, "
                      f"{RESAMPLES:,} resamples"}


def per_case_by(rows: list[dict], group: str = "variant") -> dict[str, dict[int, dict]]:
    """{row[group]: {seed: per_case_dice}} of the rows that have per-case Dice: the shape `compare`
    and `paired_against` pair."""
    by: dict[str, dict[int, dict]] = {}
    for r in rows:
        if r.get("per_case_dice"):
            by.setdefault(r[group], {})[r["seed"]] = r["per_case_dice"]
    return by


def paired_against(rows: list[dict], control: str, group: str = "variant",
                   case_groups: dict[str, str] | None = None) -> dict:
    """Per group: the paired per-case difference (group - control) of the mean foreground Dice,
    over the seeds both have (each case's difference averaged over those seeds), with its
    percentile-bootstrap interval over cases (over whole `case_groups`, e.g. patients, if given).
    Rows need `per_case_dice` ({case: {"mean": ...}})."""
    by = per_case_by(rows, group)
    if control not in by:
        return {}
    out = {}
    for name, seeds in by.items():
        common = sorted(set(seeds) & set(by[control]))
        if name == control or not common:
            continue
        cases = sorted(set.intersection(*(set(seeds[s]) & set(by[control][s]) for s in common)))
        diff = np.array([np.mean([seeds[s][c]["mean"] - by[control][s][c]["mean"] for s in common]) for c in cases])
        labels = [case_groups.get(c, c) for c in cases] if case_groups else None
        out[name] = {**paired_interval(diff, groups=labels), "seeds": common}
    return out
