"""Which cost ranks what a network pays per training step on this CPU: parameters (the search's f2
as published), MACs of one patch, or measured inference latency (`objectives.cost`)?

At equal seconds on 2 cores the ACDC pick (343 k parameters) lost to a DynUNet of the same size that
trained ~4x more steps: equal parameters, unequal step cost. Before a search prices step cost, this
measures which of its f2 choices ranks the bare training step (scripts/step_cost_study.py), with a
bootstrap over networks for each Kendall tau and for the difference between two of them."""

from __future__ import annotations

import numpy as np
from scipy.stats import kendalltau

from medseg_nas.bench.network_cost import time_steps
from medseg_nas.bench.peers import n_params as count_params
from medseg_nas.deployment_cost import network_cost

COST_KEYS = ("n_params", "macs", "latency_ms")  # what f2 can be the log of (results.COSTS) and params
RESAMPLES = 2000


def cost_row(name: str, build, train_cfg, plan, steps: int, latency_runs: int, device: str = "cpu") -> dict:
    """Parameters, MACs (one patch), median CPU latency (one median volume, the search's measure) and
    seconds of one bare training step (as the Trainer lays the network out, the config's batch) of
    `build()`."""
    from medseg_nas.train import Trainer

    cost = network_cost(build, plan.in_channels, plan.patch_size, plan.median_shape, latency_runs)
    trainer = Trainer(train_cfg, None, plan, device=device, progress=False, network_fn=lambda _: build())
    net = trainer.build(None)
    step_ms = time_steps(net, str(trainer.device), steps, tuple(plan.patch_size), int(trainer.cfg.batch_size),
                         int(plan.in_channels), trainer.channels_last)
    return {"name": name, "n_params": count_params(net), "macs": int(cost.macs), "latency_ms": cost.latency_ms,
            "step_s": round(step_ms / 1000, 4), "steps_timed": int(steps)}


def _tau(x, y) -> float:
    return float(kendalltau(np.asarray(x, float), np.asarray(y, float)).statistic)


def tau_table(rows: list[dict], target: str = "step_s", keys=COST_KEYS, seed: int = 0) -> dict:
    """Kendall tau of each cost against `target` over `rows`, each with a 95 % percentile bootstrap
    over networks, and each pair's difference bootstrapped on the same resamples (one cost ranks
    the target better than another if that interval excludes 0)."""
    rows = [r for r in rows if all(r.get(k) is not None for k in (*keys, target))]
    n = len(rows)
    out: dict = {"n": n, "target": target}
    if n < 4:
        return out
    y = np.array([r[target] for r in rows], float)
    cols = {k: np.array([r[k] for r in rows], float) for k in keys}
    rng = np.random.default_rng(seed)
    draws = {k: [] for k in keys}
    for _ in range(RESAMPLES):
        idx = rng.integers(0, n, n)
        if len(set(idx.tolist())) < 3:
            continue
        for k in keys:
            draws[k].append(_tau(cols[k][idx], y[idx]))
    draws = {k: np.array(v) for k, v in draws.items()}

    def interval(v: np.ndarray) -> list[float]:
        v = v[~np.isnan(v)]
        return [round(float(np.percentile(v, 2.5)), 3), round(float(np.percentile(v, 97.5)), 3)]

    for k in keys:
        out[k] = {"tau": round(_tau(cols[k], y), 3), "ci95": interval(draws[k])}
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            d = draws[a] - draws[b]
            out[f"{a}_minus_{b}"] = {"tau": round(out[a]["tau"] - out[b]["tau"], 3), "ci95": interval(d)}
    return out


def seconds_per_gmac(rows: list[dict]) -> dict:
    """Step seconds per GMAC of one patch, per network: how far MACs alone miss the step's cost."""
    return {r["name"]: round(r["step_s"] / (r["macs"] / 1e9), 4) for r in rows if r.get("macs")}
