"""A finished `medseg-nas run` directory read as a whole-job benchmark record, with the issue's
targets stated as met or not (scripts/whole_job_summary.py is its CLI; the record is data, kept
apart from the command line that writes it)."""

from __future__ import annotations

import json
import platform

from medseg_nas.bench.data import groups_of
from medseg_nas.bench.stats import mean_dice_ci, plateau_epoch
from medseg_nas.results import TrialStatus
from medseg_nas.rundir import RunDir

TARGET_DICE = 0.89  # nnU-Net 3d_fullres, MSD Task04: 0.8987 / 0.8820, mean 0.8904
TARGET_PARAMS = 500_000
TARGET_SECONDS = 2 * 3600
PLATEAU_TOL = 0.005


def retrain_curve(history: dict) -> dict:
    """Monitor-slice Dice along the retrain, and the epoch after which it stopped rising by > tol."""
    rows = history.get("history") or []
    val = [float(r["val_dice"]) for r in rows if r.get("val_dice") is not None]
    if not val:
        return {}
    step = max(1, len(val) // 10)
    return {"epochs": len(val), "val_dice_every": {str(i + 1): round(val[i], 4) for i in range(step - 1, len(val), step)},
            "best": round(max(val), 4), "best_epoch": 1 + val.index(max(val)),
            "plateau_tol": PLATEAU_TOL, "plateau_epoch": plateau_epoch(val, PLATEAU_TOL),
            "gain_last_half": round(max(val) - max(val[: len(val) // 2]), 4) if len(val) > 1 else 0.0}


def summarise(run: RunDir, target_dice: float = TARGET_DICE) -> dict:
    cfg = run.config()
    front = json.loads(run.front_json.read_text())
    info = json.loads(run.retrain_json.read_text())
    summary = json.loads(run.summary_json.read_text())
    history = json.loads(run.history_json.read_text())
    times = json.loads(run.stage_times_json.read_text())["runs"] if run.stage_times_json.is_file() else []
    rows = run.trial_rows()
    split = run.split()
    classes = {name: {"dice": round(c["dice"]["mean"], 4), "dice_std": round(c["dice"]["std"], 4),
                      "hd95_mm": round(c["hd95"]["mean"], 2), "hd95_std": round(c["hd95"]["std"], 2)}
               for name, c in summary["classes"].items()}
    # a stopped and resumed run has one entry per invocation: a stage's cost is its sum over them
    stage_seconds: dict[str, float] = {}
    for t in times:
        for k, v in t["seconds"].items():
            stage_seconds[k] = round(stage_seconds.get(k, 0.0) + v, 1)
    total = round(sum(t["total_s"] for t in times), 1) if times else None
    doc = {
        "benchmark": "whole_job", "run_dir": str(run.path), "config": cfg.name,
        "data": {"root": cfg.data.root, "n_train": len(split.train), "n_val": len(split.val), "n_test": len(split.test),
                 "test_ids": list(split.test), "augment": cfg.data.augment,
                 "retrain_augment": info.get("augment", cfg.data.augment)},
        "search": {"strategy": cfg.search.strategy, "budget_trials": cfg.search.budget_trials,
                   "budget_hours": cfg.search.budget_hours, "fidelity": fidelity_of(cfg, front),
                   "trial_budget": [cfg.train.epochs, cfg.train.iters_per_epoch, cfg.train.batch_size],
                   "n_done": sum(r.status == TrialStatus.DONE for r in rows),
                   "n_failed": sum(r.status == TrialStatus.FAILED for r in rows),
                   "front_size": len(front.get("front", [])), "hypervolume": front.get("hypervolume"),
                   "space": {"n_c": list(cfg.space.n_c), "n_f": list(cfg.space.n_f),
                             "lr": [cfg.space.lr_min, cfg.space.lr_max, cfg.space.lr_grid]}},
        "chosen": {"trial_id": info["trial_id"], "pick": info["pick"], "reason": info.get("reason"),
                   "genome": info["genome"], "n_params": info["n_params"],
                   "search_f1": info["search_objectives"]["f1"]},
        "retrain": {"budget": [info.get("epochs_budget", cfg.retrain.epochs),  # what the model was trained with
                               info.get("iters_per_epoch", cfg.retrain.iters_per_epoch)], "epochs_run": info.get("epochs_run"),
                    "e_max": info.get("e_max"), "monitor_dice": info.get("val_dice"),
                    "monitor_cases": len(info.get("monitor_cases") or []), "monitor_held_out": info.get("monitor_held_out"),
                    "include_val": info.get("include_val"), "seconds": info.get("seconds"),
                    "curve": retrain_curve(history)},
        "test": {"n_cases": summary["n_cases"], "tta": summary.get("tta"), "classes": classes,
                 "mean_dice": round(summary["mean_dice"], 4), "mean_hd95_mm": round(summary["mean"]["hd95"], 2),
                 # over patients where cases are grouped (ACDC's ED/ES frames): frames of one patient are not independent
                 "mean_dice_ci": mean_dice_ci(summary.get("cases") or [], groups=groups_of(cfg.data.root)),
                 # per case, so a later comparison can pair against this run's own model
                 "per_case_dice": {str(c["id"]): round(c["mean_dice"], 4) for c in summary.get("cases") or []},
                 "largest_component": summary.get("largest_component"),
                 # what the model applies (decided on the monitor cases) and its raw output's figures
                 "postprocess": summary.get("postprocess"), "raw": summary.get("raw")},
        "stage_seconds": stage_seconds, "total_s": total, "stage_time_runs": times,
        "machine": {"python": platform.python_version(), "cpu_count": times[0].get("cpu_count") if times else None},
    }
    # every trial of the search (the size cap and the proxy's ranking are read off this), and where
    # the trials' time went: validation is not free on whole volumes
    doc["trials"] = [{"id": r.id, "n_params": r.n_params, "f1": r.f1, "val_dice": (r.result or {}).get("val_dice"),
                      "seconds": r.seconds, "rung": r.rung, "genome": r.genome} for r in rows if r.status == TrialStatus.DONE]
    doc["chosen"]["rung"] = next((r.rung for r in rows if r.id == info["trial_id"]), None)
    timing = [(r.result or {}).get("timing") or {} for r in rows if r.status == TrialStatus.DONE]
    doc["search"]["trial_seconds"] = {k: round(sum(t.get(k, 0.0) for t in timing), 1)
                                      for k in ("train_s", "val_s", "data_wait_s")}
    ci = doc["test"]["mean_dice_ci"]
    doc["targets"] = {
        f"mean_test_dice_ge_{target_dice:g}": {
            "value": doc["test"]["mean_dice"], "met": doc["test"]["mean_dice"] >= target_dice,
            "short_by": round(max(0.0, target_dice - doc["test"]["mean_dice"]), 4),
            "target_inside_ci": bool(ci) and ci["low"] <= target_dice <= ci["high"]},
        "params_le_0.5M": {"value": info["n_params"], "met": info["n_params"] <= TARGET_PARAMS},
        "whole_job_le_2h": {"value": total, "met": total is not None and total <= TARGET_SECONDS},
    }
    return doc


def fidelity_of(cfg, front: dict) -> dict:
    """How the search budgeted its trials (a halving search's f1 values are of networks trained for
    different lengths): the runner's own account in front.json (ladder, trials that finished each
    rung) with the promotion pool, or just the kind where there was no halving."""
    fid = cfg.search.fidelity
    if not front.get("fidelity"):
        return {"kind": fid.kind}
    return {**front["fidelity"], "promote": fid.promote}


def chosen_costs(run: RunDir, runs: int = 5) -> dict:
    """MACs, activation memory and CPU latency of the chosen network, measured now on this machine
    (deployment_cost.genome_cost on the run's plan; runs older than the cost columns have none)."""
    from medseg_nas.data import DataPlan
    from medseg_nas.deployment_cost import genome_cost
    from medseg_nas.space import Genome
    from medseg_nas.space.network import NetworkSpec

    cfg = run.config()
    info = json.loads(run.retrain_json.read_text())
    plan = DataPlan.from_dict(json.loads(run.plan_json.read_text()))
    cost = genome_cost(Genome.from_dict(info["genome"]), NetworkSpec.of(plan, cfg.space.cell), plan.patch_size,
                       plan.median_shape, runs)
    return {**cost.to_dict(), "patch": list(plan.patch_size), "measured_here": True}


def add_peer_target(doc: dict, peers: dict) -> None:
    """At least DynUNet's Dice at equal wall-clock with >= 10x fewer parameters (means over seeds)."""
    res = peers.get("results", {})
    nas, dyn = res.get("nas_pick", {}), res.get("monai_dynunet", {})
    doc["peers"] = {k: {f: v.get(f) for f in ("n_params", "n_seeds", "test_mean_dice", "test_mean_dice_std",
                                                "test_mean_hd95_mm", "train_s")} for k, v in res.items()}
    doc["peers_file"] = peers.get("_path")
    if nas.get("test_mean_dice") is not None and dyn.get("test_mean_dice") is not None:
        ratio = dyn["n_params"] / nas["n_params"]
        doc["targets"]["dynunet_dice_at_10x_fewer_params"] = {
            "nas": nas["test_mean_dice"], "dynunet": dyn["test_mean_dice"], "param_ratio": round(ratio, 1),
            "met": nas["test_mean_dice"] >= dyn["test_mean_dice"] and ratio >= 10}
