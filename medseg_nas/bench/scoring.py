"""Train one network for one seed and score it on the test split (preprocessed grid, the
Trainer's sliding window): the one scoring path of the peer, ablation and proxy benchmarks."""

from __future__ import annotations

import time

import numpy as np
import torch

from medseg_nas.results import TrialStatus
from medseg_nas.train import Trainer


def evaluate_test(trainer: Trainer, spec, state_dict, plan, bundle) -> dict:
    from medseg_nas.metrics import case_metrics
    from medseg_nas.sliding_window import sliding_window

    net = trainer.build(spec)
    net.load_state_dict(state_dict)
    net.eval()
    fg = [k for k in sorted(plan.labels) if k != 0]
    per_class = {plan.labels[k]: {"dice": [], "hd95": []} for k in fg}
    ms = []
    cases: dict[str, dict[str, float]] = {}  # per-case Dice, for paired comparisons
    with torch.inference_mode():
        for i in range(len(bundle.test)):
            item = bundle.test[i]
            image = item["image"]
            label = np.asarray(torch.as_tensor(item["label"]).reshape(item["label"].shape[-3:]).cpu()).astype(np.int16)
            t0 = time.perf_counter()
            logits = sliding_window(net, image, plan.patch_size, int(trainer.cfg.sw_batch_size),
                                    float(trainer.cfg.sw_overlap), trainer.device)
            pred = logits.argmax(0).cpu().numpy().astype(np.int16)
            ms.append(1000 * (time.perf_counter() - t0))
            m = case_metrics(pred, label, plan.target_spacing, fg)
            for k in fg:
                per_class[plan.labels[k]]["dice"].append(m[k]["dice"])
                per_class[plan.labels[k]]["hd95"].append(m[k]["hd95"])
            case = {plan.labels[k]: round(float(m[k]["dice"]), 4) for k in fg}
            cases[str(bundle.ids["test"][i])] = {**case, "mean": round(float(np.mean(list(case.values()))), 4)}
    out = {name: {"dice": round(float(np.mean(v["dice"])), 4), "dice_std": round(float(np.std(v["dice"])), 4),
                  "hd95_mm": round(float(np.mean(v["hd95"])), 2), "hd95_std": round(float(np.std(v["hd95"])), 2)}
           for name, v in per_class.items()}
    return {"test": out, "test_mean_dice": round(float(np.mean([v["dice"] for v in out.values()])), 4),
            "test_mean_hd95_mm": round(float(np.mean([v["hd95_mm"] for v in out.values()])), 2),
            "infer_ms_per_volume": round(float(np.mean(ms)), 1), "n_test": len(ms), "per_case_dice": cases}


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
