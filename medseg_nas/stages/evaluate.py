"""`medseg-nas evaluate RUN_DIR` (or `--model M --data DIR`): test-set Dice / HD95 / ASD per class.

Each test case is segmented exactly as `predict` does (training preprocessing, sliding window,
back to the original image grid) and compared with its label file on that grid, with the
original voxel spacing (distances in mm), by `medseg_nas.metrics` (its empty-structure
conventions keep every number finite). Writes

    best/predictions/<id>_seg.nii.gz   the label maps (input affine and shape)
    best/metrics.csv                   one row per case and foreground class
    best/summary.json                  per-class mean / std, mean foreground Dice, per-case list

and prints a per-class table. With `--model M --data DIR` every training case of the MSD-layout
folder DIR is evaluated and the outputs go to `--output` (default: next to the model, eval/).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from medseg_nas.errors import DataError, MedsegError


def evaluate_cases(model_path, cases: list[dict], out_dir: Path, tta: bool = False, device: str = "auto",
                   save_predictions: bool = True, postprocess: bool = True, log=print) -> dict:
    """Segment and score `cases` ({"id", "image", "label"}) with `model_path` (a model file or a
    LoadedModel); write metrics.csv + summary.json.

    With `postprocess` the model's post-processing decision (medseg_nas.postprocess, in the model
    file) is applied, as `predict` applies it: the figures, the CSV and the saved label maps are of
    that output, and the summary keeps the raw network output's figures beside them (`raw`). The
    benchmarks pass False to score every network's raw output alike.

    Metrics, CSV columns and the per-class summary are medseg_nas.metrics's (finite conventions
    for empty structures); the summary adds mean_dice, the per-case list (with prediction paths),
    best/worst case, model and TTA.
    """
    import nibabel as nib
    import torch

    from medseg_nas.inference import Predictor
    from medseg_nas.metrics import case_metrics_detail, metric_rows, summarise, write_case_csv
    from medseg_nas.niftiio import save_label_nifti
    from medseg_nas.model_io import LoadedModel, load_model
    from medseg_nas.postprocess import apply_postprocess, keep_largest_component, postprocess_classes

    if not cases:
        raise DataError("no cases to evaluate (the test split is empty)")
    # a LoadedModel in memory (the benchmarks score a network just trained) or a model file
    model = model_path if isinstance(model_path, LoadedModel) else load_model(model_path, "cpu")
    predictor = Predictor(model, device=device, tta=tta)
    fg = {k: v for k, v in sorted(model.labels.items()) if k != 0}
    out_dir.mkdir(parents=True, exist_ok=True)
    pred_dir = out_dir / "predictions"
    applied = postprocess_classes(model.extra) if postprocess else []
    rows, raw_rows, lcc_rows, per_case, predict_ms = [], [], [], [], []
    for n, case in enumerate(cases, 1):
        t = time.time()
        pred, ref = predictor(case["image"])
        predict_ms.append((time.time() - t) * 1000.0)
        lab_img = nib.load(str(case["label"]))
        label = np.rint(np.asarray(lab_img.dataobj, dtype=np.float32)).astype(np.int16)
        if label.ndim == 4 and label.shape[-1] == 1:
            label = label[..., 0]
        if label.shape != pred.shape:
            raise DataError(f"label {case['label']} has shape {label.shape} but image {case['image']} has {pred.shape}")
        spacing = [float(z) for z in lab_img.header.get_zooms()[:3]]
        raw = metric_rows(str(case["id"]), case_metrics_detail(pred, label, spacing, list(fg)), fg)
        raw_rows += raw
        # every class reduced to its largest component: measured whatever the decision
        lcc = metric_rows(str(case["id"]), case_metrics_detail(keep_largest_component(pred, fg), label, spacing, list(fg)), fg)
        lcc_rows += lcc
        out = apply_postprocess(pred, applied)
        case_rows = raw if not applied else lcc if set(applied) == set(fg) else \
            metric_rows(str(case["id"]), case_metrics_detail(out, label, spacing, list(fg)), fg)
        rows += case_rows
        pred_path = save_label_nifti(out, ref, pred_dir / f"{case['id']}_seg.nii.gz") if save_predictions else None
        entry = {"id": case["id"], "image": str(case["image"]), "label": str(case["label"]),
                 "prediction": str(pred_path) if pred_path else None, **case_scores(case_rows)}
        if applied:
            entry["raw"] = case_scores(raw)
        entry["largest_component"] = case_scores(lcc)
        per_case.append(entry)
        log(f"[{n}/{len(cases)}] {case['id']}: " + "  ".join(f"{name} {v['dice']:.3f}" for name, v in entry["classes"].items())
            + f"  ({time.time() - t:.1f}s)")
    write_case_csv(rows, out_dir / "metrics.csv")
    summary = summarise(rows)
    summary.update({
        "model": "in memory" if model is model_path else str(model_path),
        "tta": tta,
        "mean_dice": float(summary["mean"]["dice"]),
        "cases": per_case,
        "postprocess": model.extra.get("postprocess") if postprocess else None,
        "raw": brief_summary(summarise(raw_rows), "the network's output before post-processing") if applied else None,
        "largest_component": brief_summary(summarise(lcc_rows), "each foreground class reduced to its largest "
                                           "connected component (whatever the model's decision)"),
        "best_case": max(per_case, key=lambda c: c["mean_dice"])["id"],
        "worst_case": min(per_case, key=lambda c: c["mean_dice"])["id"],
        # what the network costs: its parameters, the costs its search trial measured, and the
        # median wall-clock of predicting one test file here (read, preprocess, infer, invert)
        "costs": {
            "n_params": model.extra.get("n_params") or sum(p.numel() for p in model.network.parameters()),
            **(model.extra.get("search_costs") or {}),
            "predict_ms_per_volume": round(float(np.median(predict_ms)), 1),
            "predict_device": str(predictor.device),
            "predict_threads": torch.get_num_threads(),
        },
    })
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def case_scores(case_rows: list[dict]) -> dict:
    """One case's metrics per class name and its mean foreground Dice, from its `metric_rows`."""
    from medseg_nas.metrics import METRICS

    classes = {r["name"]: {m: float(r[m]) for m in METRICS} for r in case_rows}
    return {"classes": classes, "mean_dice": float(np.mean([c["dice"] for c in classes.values()]))}


def brief_summary(summary: dict, what: str) -> dict:
    """Per-class Dice / HD95 means of another version of the same predictions (raw, or every class
    reduced to its largest component), to stand beside the main figures."""
    return {"what": what,
            "classes": {n: {m: c[m] for m in ("dice", "hd95")} for n, c in summary["classes"].items()},
            "mean_dice": float(summary["mean"]["dice"]), "mean_hd95": float(summary["mean"]["hd95"])}


def format_table(summary: dict) -> str:
    def f(x, nd=3):
        return "   n/a" if x is None else f"{x:.{nd}f}"

    lines = [f"{'class':<16} {'Dice mean':>9} {'± std':>7} {'HD95 mm':>8} {'ASD mm':>7}  misses"]
    for name, c in summary["classes"].items():
        misses = c.get("empty_prediction", 0) + c.get("empty_ground_truth", 0)
        lines.append(f"{name:<16} {f(c['dice']['mean']):>9} {f(c['dice']['std']):>7} {f(c['hd95']['mean'], 2):>8} "
                     f"{f(c['asd']['mean'], 2):>7}  {misses}")
    lines.append(f"{'mean foreground':<16} {summary['mean_dice']:>9.3f}   ({summary['n_cases']} test cases; "
                 f"best {summary['best_case']}, worst {summary['worst_case']})")
    pp, raw = summary.get("postprocess"), summary.get("raw")
    if raw:
        names = [n for n, d in (pp or {}).get("per_class", {}).items() if d.get("applied")] or ["every class"]
        lines.append(f"{'raw output':<16} {raw['mean_dice']:>9.3f}   HD95 {raw['mean_hd95']:.2f} mm: before the largest-"
                     f"component post-processing ({', '.join(names)}; predict.postprocess {pp.get('mode') if pp else '?'})")
    lcc = summary.get("largest_component")
    if lcc:
        lines.append(f"{'largest comp.':<16} {lcc['mean_dice']:>9.3f}   HD95 {lcc['mean_hd95']:.2f} mm: every class kept "
                     "to its largest connected component")
    return "\n".join(lines)


def evaluate_run(run_dir: str | Path, tta: bool | None = None, device: str = "auto", log=print, cfg=None) -> dict:
    """Score the run's model on its test split. The post-processing is decided first (on the monitor
    cases) when the model carries no decision or one made under another `predict.postprocess`."""
    from medseg_nas.rundir import RunDir

    run = RunDir(run_dir)
    cfg = cfg if cfg is not None else run.config()
    if not run.model_pt.is_file():
        raise MedsegError(f"{run.model_pt} does not exist; run `medseg-nas retrain {run.path}` first")
    cases = run.cases("test")
    if not cases:
        raise DataError(f"the test split of {run.path} is empty (data.test_fraction = {cfg.data.test_fraction})")
    tta = cfg.predict.tta if tta is None else tta
    from medseg_nas.model_io import read_checkpoint
    from medseg_nas.stages.postprocess_decision import decide_postprocess, has_decision

    extra = read_checkpoint(run.model_pt).get("extra")
    if not has_decision(extra) or extra["postprocess"].get("mode") != cfg.predict.postprocess:
        decide_postprocess(run.path, cfg, device=device, log=log)  # retrained before it existed, or another mode
    summary = evaluate_cases(run.model_pt, cases, run.best, tta=tta, device=device, log=log)
    log(format_table(summary))
    return summary


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", nargs="?", help="run directory (uses best/model.pt and the test split)")
    p.add_argument("--model", default=None, help="a model.pt / model.ts to evaluate instead (with --data)")
    p.add_argument("--data", default=None, help="MSD-layout folder whose training cases are evaluated (with --model)")
    p.add_argument("--output", default=None, help="output folder for --model/--data (default: <model dir>/eval)")
    p.add_argument("--tta", action="store_true", default=None, help="mirror test-time augmentation")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")


def main(args: argparse.Namespace) -> int:
    if args.model or args.data:
        if not (args.model and args.data):
            raise MedsegError("--model and --data go together")
        from medseg_nas.data import load_datalist

        out = Path(args.output) if args.output else Path(args.model).parent / "eval"
        summary = evaluate_cases(Path(args.model), load_datalist(args.data), out, tta=bool(args.tta), device=args.device)
        print(format_table(summary))
        print(f"metrics → {out / 'metrics.csv'}, {out / 'summary.json'}")
        return 0
    if not args.run_dir:
        raise MedsegError("give a RUN_DIR, or --model M --data DIR")
    evaluate_run(args.run_dir, tta=args.tta, device=args.device)
    return 0
