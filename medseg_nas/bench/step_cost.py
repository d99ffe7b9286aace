"""Which cost ranks what a network pays per training step on this CPU: parameters (the search's f2
as published), MACs of one patch, or measured inference latency (`objectives.cost`)?

At equal seconds on 2 cores the ACDC pick (343 k parameters) lost to a DynUNet of the same size that
trained ~4x more steps: equal parameters, unequal step cost. Before a search prices step cost, this
measures which of its f2 choices ranks the bare training step (scripts/step_cost_study.py), with a
bootstrap over networks for each Kendall tau and for the difference between two of them."""

from __future__ import annotations

from medseg_nas.bench import stats
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


def tau_table(rows: list[dict], target: str = "step_s", keys=COST_KEYS, seed: int = 0) -> dict:
    """Each cost's Kendall tau against the step, bootstrapped over networks (`stats.tau_table`)."""
    return stats.tau_table(rows, target, keys, seed, RESAMPLES)


def seconds_per_gmac(rows: list[dict]) -> dict:
    """Step seconds per GMAC of one patch, per network: how far MACs alone miss the step's cost."""
    return {r["name"]: round(r["step_s"] / (r["macs"] / 1e9), 4) for r in rows if r.get("macs")}
