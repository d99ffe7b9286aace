"""The post-processing a retrained model applies, decided on the run's held-out monitor cases.

Why not on the test split: what is applied to the test cases must not be chosen by them. The
monitor slice (validation cases the retrain never trained on, `retrain.monitor_split`) is the run's
only other held-out data, as nnU-Net's validation folds are for its `determine_postprocessing`.
The decision is written into best/model.pt (`extra["postprocess"]`, carried on into the TorchScript
metadata and the MONAI bundle) and into best/postprocess.json with the per-class Dice it rests on.
`retrain` makes it after every retrain; `evaluate` makes it for a model that predates it.
"""

from __future__ import annotations

import json
from pathlib import Path

from medseg_nas.postprocess import decide_largest_component, fixed_decision
from medseg_nas.rundir import RunDir

POSTPROCESS_JSON = "postprocess.json"  # in best/, beside model.pt
MONITOR_EVAL = "monitor_eval"  # best/monitor_eval/: the monitor cases' metrics the decision used


def decide_postprocess(run_dir: str | Path, cfg=None, device: str = "auto", log=print) -> dict:
    """Decide (by `predict.postprocess`), record in the model file and best/postprocess.json, return it."""
    from medseg_nas.model_io import load_model, set_model_extra
    from medseg_nas.stages.evaluate import evaluate_cases

    run = RunDir(run_dir)
    cfg = cfg if cfg is not None else run.config()
    model = load_model(run.model_pt, "cpu")
    fg = {k: v for k, v in sorted(model.labels.items()) if k != 0}
    mode = cfg.predict.postprocess
    info = json.loads(run.retrain_json.read_text()) if run.retrain_json.is_file() else {}
    monitor = [str(i) for i in info.get("monitor_cases") or []]
    if mode != "auto":
        decision = fixed_decision(mode, fg)
    elif not (info.get("monitor_held_out") and monitor):
        decision = {**fixed_decision("none", fg), "mode": "auto",
                    "rule": "auto, but the retrain held out no monitor case (retrain.monitor_fraction = 0 or no "
                            "validation split): nothing to decide on, so nothing is applied"}
    else:
        cases = [c for c in run.cases("val") if str(c["id"]) in set(monitor)]
        summary = evaluate_cases(model, cases, run.best / MONITOR_EVAL, device=device, save_predictions=False,
                                 postprocess=False, log=lambda *_: None)
        decision = decide_largest_component(summary["cases"], fg)
    set_model_extra(run.model_pt, "postprocess", decision)
    (run.best / POSTPROCESS_JSON).write_text(json.dumps(decision, indent=2))
    applied = [fg[c] for c in decision["largest_component"]]
    per = "; ".join(f"{n} {d['dice_raw']:.4f} → {d['dice_largest_component']:.4f}" for n, d in decision["per_class"].items())
    log(f"post-processing ({mode}): largest component kept for {', '.join(applied) or 'no class'}"
        + (f" (monitor Dice raw → reduced, {len(decision['decided_on'])} cases: {per})" if per else ""))
    return decision


def has_decision(model_extra: dict | None) -> bool:
    """Whether a model file carries a post-processing decision (models retrained before it do not)."""
    return bool((model_extra or {}).get("postprocess"))
