"""`medseg-nas evaluate RUN_DIR` (or `--model M --data DIR`): test-set Dice / HD95 / ASD per class.

Each test case is segmented exactly as `predict` does (training preprocessing, sliding window,
back to the original image grid) and compared with its label file on that grid, with the
original voxel spacing (distances in mm), by `medseg_nas.evaluate.case_metrics`. Writes

    best/predictions/<id>_seg.nii.gz   the label maps (input affine and shape)
    best/metrics.csv                   one row per case and foreground class
    best/summary.json                  per-class mean / std / median, mean foreground Dice, cases

and prints a per-class table. With `--model M --data DIR` every training case of the MSD-layout
folder DIR is evaluated and the outputs go to `--output` (default: next to the model, eval/).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path

import numpy as np

from medseg_nas.errors import DataError, MedsegError

METRICS = ("dice", "hd95", "asd")


def _fallback_case_metrics(prediction, label, spacing, labels) -> dict:
    """Used only while medseg_nas.evaluate is missing: MONAI Dice / HD95 / ASD in mm."""
    import torch
    from monai.metrics import compute_average_surface_distance, compute_dice, compute_hausdorff_distance

    out = {}
    for k in labels:
        p = torch.as_tensor(prediction == k)[None, None].float()
        g = torch.as_tensor(label == k)[None, None].float()
        y_pred, y = torch.cat([1 - p, p], 1), torch.cat([1 - g, g], 1)
        dice = float(compute_dice(y_pred, y, include_background=False, ignore_empty=False)[0, 0])
        if p.sum() == 0 and g.sum() == 0:
            out[k] = {"dice": 1.0, "hd95": 0.0, "asd": 0.0}
            continue
        if p.sum() == 0 or g.sum() == 0:
            out[k] = {"dice": dice, "hd95": float("nan"), "asd": float("nan")}
            continue
        hd = float(compute_hausdorff_distance(y_pred, y, percentile=95, spacing=list(spacing))[0, 0])
        asd = float(compute_average_surface_distance(y_pred, y, symmetric=True, spacing=list(spacing))[0, 0])
        out[k] = {"dice": dice, "hd95": hd, "asd": asd}
    return out


def case_metrics(prediction, label, spacing, labels) -> dict:
    try:
        from medseg_nas.evaluate import case_metrics as cm
    except ImportError:
        cm = _fallback_case_metrics
    return cm(prediction, label, spacing, labels)


def _finite(xs) -> list[float]:
    return [float(x) for x in xs if x is not None and math.isfinite(float(x))]


def _stats(xs) -> dict:
    f = _finite(xs)
    return {
        "mean": float(np.mean(f)) if f else None,
        "std": float(np.std(f)) if f else None,
        "median": float(np.median(f)) if f else None,
        "n": len(f),
        "n_undefined": len(xs) - len(f),
    }


def evaluate_cases(model_path, cases: list[dict], out_dir: Path, tta: bool = False, device: str = "auto",
                   save_predictions: bool = True, log=print) -> dict:
    """Segment and score `cases` ({"id", "image", "label"}); write metrics.csv + summary.json."""
    import nibabel as nib

    from medseg_nas.inference import Predictor, save_label_nifti
    from medseg_nas.model_io import load_model

    if not cases:
        raise DataError("no cases to evaluate (the test split is empty)")
    model = load_model(model_path, "cpu")
    predictor = Predictor(model, device=device, tta=tta)
    fg = {k: v for k, v in sorted(model.labels.items()) if k != 0}
    out_dir.mkdir(parents=True, exist_ok=True)
    pred_dir = out_dir / "predictions"
    rows, per_case = [], []
    for n, case in enumerate(cases, 1):
        t = time.time()
        pred, ref = predictor(case["image"])
        lab_img = nib.load(str(case["label"]))
        label = np.rint(np.asarray(lab_img.dataobj)).astype(np.int64).reshape(lab_img.shape[:3])
        if label.shape != pred.shape:
            raise DataError(f"label {case['label']} has shape {label.shape} but image {case['image']} has {pred.shape}")
        spacing = [float(s) for s in ref.header.get_zooms()[:3]]
        m = case_metrics(pred, label, spacing, fg)
        pred_path = None
        if save_predictions:
            pred_path = save_label_nifti(pred, ref, pred_dir / f"{case['id']}_seg.nii.gz")
        entry = {"id": case["id"], "image": str(case["image"]), "label": str(case["label"]),
                 "prediction": str(pred_path) if pred_path else None, "classes": {}}
        for k, name in fg.items():
            cm = m.get(k, m.get(name, m.get(str(k))))
            if cm is None:
                raise MedsegError(f"case_metrics returned no entry for class {k} ({name})")
            vals = {key: (float(cm[key]) if cm.get(key) is not None else float("nan")) for key in METRICS}
            entry["classes"][name] = vals
            rows.append({"case": case["id"], "class_id": k, "class": name, **vals})
        entry["mean_dice"] = float(np.mean([c["dice"] for c in entry["classes"].values()]))
        per_case.append(entry)
        log(f"[{n}/{len(cases)}] {case['id']}: " + "  ".join(f"{name} {v['dice']:.3f}" for name, v in entry["classes"].items())
            + f"  ({time.time() - t:.1f}s)")
    with open(out_dir / "metrics.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["case", "class_id", "class", *METRICS])
        w.writeheader()
        for r in rows:
            w.writerow({**r, **{k: (f"{r[k]:.6f}" if math.isfinite(r[k]) else "nan") for k in METRICS}})
    classes = {}
    for k, name in fg.items():
        classes[name] = {"id": k, **{key: _stats([c["classes"][name][key] for c in per_case]) for key in METRICS}}
    summary = {
        "model": str(model_path),
        "n_cases": len(per_case),
        "tta": tta,
        "mean_dice": float(np.mean([c["mean_dice"] for c in per_case])),
        "classes": classes,
        "cases": per_case,
        "best_case": max(per_case, key=lambda c: c["mean_dice"])["id"],
        "worst_case": min(per_case, key=lambda c: c["mean_dice"])["id"],
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=True))
    return summary


def format_table(summary: dict) -> str:
    def f(x, nd=3):
        return "   n/a" if x is None else f"{x:.{nd}f}"

    lines = [f"{'class':<16} {'Dice mean':>9} {'± std':>7} {'HD95 mm':>8} {'ASD mm':>7}  cases"]
    for name, c in summary["classes"].items():
        lines.append(f"{name:<16} {f(c['dice']['mean']):>9} {f(c['dice']['std']):>7} {f(c['hd95']['mean'], 2):>8} "
                     f"{f(c['asd']['mean'], 2):>7}  {c['dice']['n']}")
    lines.append(f"{'mean foreground':<16} {summary['mean_dice']:>9.3f}   ({summary['n_cases']} test cases; "
                 f"best {summary['best_case']}, worst {summary['worst_case']})")
    return "\n".join(lines)


def outputs_complete(run_dir: str | Path) -> bool:
    b = Path(run_dir) / "best"
    need = [b / "metrics.csv", b / "summary.json"]
    if not all(p.is_file() for p in need) or not (b / "model.pt").is_file():
        return False
    return all(p.stat().st_mtime >= (b / "model.pt").stat().st_mtime for p in need)


def evaluate_run(run_dir: str | Path, tta: bool | None = None, device: str = "auto", log=print) -> dict:
    from medseg_nas.runinfo import run_cases, run_config

    run_dir = Path(run_dir)
    cfg = run_config(run_dir)
    model = run_dir / "best" / "model.pt"
    if not model.is_file():
        raise MedsegError(f"{model} does not exist; run `medseg-nas retrain {run_dir}` first")
    cases = run_cases(run_dir, "test")
    if not cases:
        raise DataError(f"the test split of {run_dir} is empty (data.test_fraction = {cfg.data.test_fraction})")
    tta = cfg.predict.tta if tta is None else tta
    summary = evaluate_cases(model, cases, run_dir / "best", tta=tta, device=device, log=log)
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
        from medseg_nas.runinfo import datalist

        out = Path(args.output) if args.output else Path(args.model).parent / "eval"
        summary = evaluate_cases(Path(args.model), datalist(args.data), out, tta=bool(args.tta), device=args.device)
        print(format_table(summary))
        print(f"metrics → {out / 'metrics.csv'}, {out / 'summary.json'}")
        return 0
    if not args.run_dir:
        raise MedsegError("give a RUN_DIR, or --model M --data DIR")
    evaluate_run(args.run_dir, tta=args.tta, device=args.device)
    return 0
