"""Train one network for one seed and score it on the test split the way `medseg-nas evaluate`
does (stages.evaluate.evaluate_cases: the predictor's preprocessing and sliding window, back to
each case's original grid, metrics in its own spacing): one scoring path for the product and
every peer, ablation and proxy benchmark."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medseg_nas.results import TrialStatus
from medseg_nas.train import Trainer

if TYPE_CHECKING:
    from medseg_nas.rundir import RunDir

SCORED_ON = "original grid (stages.evaluate.evaluate_cases)"
EPOCH_CAP = 100_000  # an epoch budget for fits on the clock (`seconds=`): the clock ends every fit long before


def inference_model(trainer: Trainer, spec, state_dict, plan):
    """The trained network as a LoadedModel (what `evaluate` loads from best/model.pt): the plain
    network (the Predictor applies its own CPU layout), the trainer's data plan and labels."""
    from medseg_nas.model_io import LoadedModel
    from medseg_nas.space import Genome
    from medseg_nas.space.network import NetworkSpec

    genome = spec if isinstance(spec, Genome) else None
    if trainer.network_fn is not None:
        net = trainer.network_fn(spec)
    else:
        net = NetworkSpec.of(plan, trainer.cell).build(spec)
    net.load_state_dict(state_dict)
    return LoadedModel(network=net.eval(), genome=genome, in_channels=int(plan.in_channels), n_classes=int(plan.n_classes),
                       network_plan=plan.network_plan, data_plan=plan, labels=dict(plan.labels),
                       extra={"n_params": int(sum(p.numel() for p in net.parameters()))}, cell=trainer.cell)


def evaluate_test(trainer: Trainer, spec, state_dict, plan, bundle) -> dict:
    """Per-class Dice / HD95 (means and sds over the test cases), the mean foreground Dice, per-case
    Dice for paired comparisons, and ms per test file (read, preprocess, infer, invert)."""
    from medseg_nas.stages.evaluate import evaluate_cases

    cases = list(bundle.test.data)  # {"id", "image", "label"}: the test split's original files
    model = inference_model(trainer, spec, state_dict, plan)
    with tempfile.TemporaryDirectory(prefix="medseg_bench_eval_") as tmp:
        summary = evaluate_cases(model, cases, Path(tmp), device=str(trainer.device), save_predictions=False,
                                 postprocess=False, log=lambda *_: None)  # every network's raw output alike
    names = [plan.labels[k] for k in sorted(plan.labels) if k != 0]
    per_case = {str(c["id"]): {**{n: round(c["classes"][n]["dice"], 4) for n in names}, "mean": round(c["mean_dice"], 4),
                               "mean_largest_component": round(c["largest_component"]["mean_dice"], 4)}
                for c in summary["cases"]}
    out = {}
    for n in names:
        dice = [c["classes"][n]["dice"] for c in summary["cases"]]
        hd95 = [c["classes"][n]["hd95"] for c in summary["cases"]]
        out[n] = {"dice": round(float(np.mean(dice)), 4), "dice_std": round(float(np.std(dice)), 4),
                  "hd95_mm": round(float(np.mean(hd95)), 2), "hd95_std": round(float(np.std(hd95)), 2)}
    lcc = summary["largest_component"]
    return {"test": out, "test_mean_dice": round(float(np.mean([v["dice"] for v in out.values()])), 4),
            "test_largest_component": {"mean_dice": round(lcc["mean_dice"], 4), "mean_hd95_mm": round(lcc["mean_hd95"], 2),
                                       **{n: {"dice": round(c["dice"]["mean"], 4), "hd95_mm": round(c["hd95"]["mean"], 2)}
                                          for n, c in lcc["classes"].items()}},
            "test_mean_hd95_mm": round(float(np.mean([v["hd95_mm"] for v in out.values()])), 2),
            "infer_ms_per_volume": summary["costs"]["predict_ms_per_volume"], "n_test": len(cases),
            "per_case_dice": per_case, "scored_on": SCORED_ON}


def fit_and_score(trainer, spec, seed: int, plan, bundle, **budget):
    """One training seed: the TrialResult and its row (budget figures, test metrics when it trained).
    `budget` (epochs, iters_per_epoch, patience) overrides the trainer config's."""
    r = trainer.fit(spec, seed=seed, **budget)
    row = {"seed": seed, "status": r.status, "error": r.error, "n_params": r.n_params,
           "train_s": round(r.seconds, 1), "val_dice": round(r.val_dice, 4), "e_max": r.e_max,
           "step_ms": r.timing.get("step_ms")}
    if r.status == TrialStatus.DONE:
        row.update(evaluate_test(trainer, spec, r.state_dict, plan, bundle))
    return r, row


def retrain_and_score(cfg, genome, seed: int, plan, bundle, device: str, **budget) -> dict:
    """A search genome retrained on the retrain's data (`stages.retrain.retrain_data`) and scored:
    `fit_and_score`'s row plus `wall_s`, training and scoring together (the proxy-fidelity scripts)."""
    trainer = Trainer(cfg.train, bundle, plan, device=device, progress=False, cell=cfg.space.cell)
    t0 = time.perf_counter()
    _, row = fit_and_score(trainer, genome, seed, plan, bundle, **budget)
    return {**row, "wall_s": round(time.perf_counter() - t0, 1)}


def own_model_row(run: RunDir, trainer: Trainer, spec, plan, bundle, info: dict) -> dict:
    """Seed 0 of the chosen network is the run's own retrained model, scored like every other row."""
    from medseg_nas.model_io import load_model

    state = load_model(run.model_pt).network.state_dict()
    row = {"seed": int(info.get("seed", 0)), "status": TrialStatus.DONE, "source": str(run.model_pt),
           "n_params": info.get("n_params"), "epochs": info.get("epochs_run"), "e_max": info.get("e_max"),
           "train_s": info.get("seconds"), "val_dice": info.get("val_dice")}
    row.update(evaluate_test(trainer, spec, state, plan, bundle))
    return row


def seed_means(runs: list[dict]) -> dict:
    """Means over the trained seeds' rows: test Dice, HD95, train seconds, inference ms, per class
    ({} when none trained)."""
    done = [x for x in runs if x["status"] == TrialStatus.DONE]
    if not done:
        return {}
    mean = lambda key, nd: round(float(np.mean([x[key] for x in done])), nd)  # noqa: E731
    return {"test_mean_dice": mean("test_mean_dice", 4), "test_mean_hd95_mm": mean("test_mean_hd95_mm", 2),
            "train_s": mean("train_s", 1), "infer_ms_per_volume": mean("infer_ms_per_volume", 1),
            "test": {c: {m: round(float(np.mean([x["test"][c][m] for x in done])), 4 if m == "dice" else 2)
                         for m in ("dice", "hd95_mm")} for c in done[0]["test"]}}


def seed_summary(rows: list[dict]) -> dict:
    """`seed_means` (bench_peers' means over seeds), plus how many seeds trained and their Dice spread."""
    done = [r["test_mean_dice"] for r in rows if r["status"] == TrialStatus.DONE]
    if not done:
        return {}
    return {"n_seeds": len(done), **seed_means(rows), "test_mean_dice_std": round(float(np.std(done)), 4)}
