"""Segmentation metrics in millimetres, fast Dice for validation, result writers.

`case_metrics(prediction, label, spacing, labels)` scores one case per foreground label:

- ``dice``: 2|P∩G| / (|P| + |G|) (identical to MONAI ``compute_dice``, counted directly).
- ``hd95``: MONAI ``compute_hausdorff_distance(percentile=95, directed=False, spacing=...)``:
  the larger of the two directed 95th-percentile surface distances, in mm.
- ``asd``: MONAI ``compute_average_surface_distance(symmetric=True, spacing=...)``: the mean
  of all surface-to-surface distances of both surfaces, in mm.

Empty structures (MONAI would return nan/inf there), following the Medical Segmentation
Decathlon's evaluation (Antonelli et al., Nat. Commun. 2022: an empty reference predicted
empty is a perfect score, a structure present in only one of the two is a complete miss):

| ground truth | prediction | dice | hd95 and asd                                   |
| ------------ | ---------- | ---- | ---------------------------------------------- |
| empty        | empty      | 1.0  | 0.0                                            |
| empty        | non-empty  | 0.0  | the volume's diagonal in mm (worst possible)   |
| non-empty    | empty      | 0.0  | the volume's diagonal in mm (worst possible)   |

So every number is finite and summaries are never NaN; the per-case CSV says in its ``note``
column which rows used a convention, and the summary counts them per class.

Sliding-window inference (validation and whole-file) lives in `medseg_nas.sliding_window`;
whole-file inference with resampling back to the original grid in
`medseg_nas.inference.Predictor`; `evaluate_predictions` scores its output against the original
label files with the original spacing, so numbers compare with published tables.
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

METRICS = ("dice", "hd95", "asd")


def _diagonal_mm(shape: Sequence[int], spacing: Sequence[float]) -> float:
    return float(math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing))))


def case_metrics_detail(prediction, label, spacing, labels: Iterable[int]) -> dict[int, dict[str, Any]]:
    """`case_metrics` plus per label: ``gt_voxels``, ``pred_voxels`` and ``note`` (convention used)."""
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    pred = np.asarray(prediction)
    gt = np.asarray(label)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from label shape {gt.shape}")
    spacing = [float(s) for s in np.atleast_1d(spacing)]
    if len(spacing) != gt.ndim:
        raise ValueError(f"spacing {spacing} has {len(spacing)} values for a {gt.ndim}-D volume")
    worst = _diagonal_mm(gt.shape, spacing)
    out: dict[int, dict[str, Any]] = {}
    for lab in labels:
        lab = int(lab)
        p = pred == lab
        g = gt == lab
        n_p, n_g = int(p.sum()), int(g.sum())
        row: dict[str, Any] = {"gt_voxels": n_g, "pred_voxels": n_p, "note": ""}
        if n_p == 0 and n_g == 0:
            row.update(dice=1.0, hd95=0.0, asd=0.0, note="both empty")
        elif n_p == 0 or n_g == 0:
            row.update(dice=0.0, hd95=worst, asd=worst, note="empty prediction" if n_p == 0 else "empty ground truth")
        else:
            inter = int(np.logical_and(p, g).sum())
            pt = torch.from_numpy(p[None, None])
            gtt = torch.from_numpy(g[None, None])
            with warnings.catch_warnings():  # MONAI 1.5+ deprecation notice inside get_mask_edges, once per case
                warnings.simplefilter("ignore", FutureWarning)
                hd = float(compute_hausdorff_distance(pt, gtt, include_background=True, percentile=95, spacing=spacing))
                asd = float(compute_average_surface_distance(pt, gtt, include_background=True, symmetric=True, spacing=spacing))
            row.update(dice=2.0 * inter / (n_p + n_g), hd95=hd, asd=asd)
        out[lab] = row
    return out


def case_metrics(prediction, label, spacing, labels: Iterable[int]) -> dict[int, dict[str, float]]:
    """Dice, HD95 (mm) and mean surface distance (mm) per foreground label of one case.

    `prediction`, `label`: integer arrays of equal shape; `spacing`: mm per axis; `labels`: the
    foreground label ids to score. Empty structures follow the conventions in the module doc.
    """
    detail = case_metrics_detail(prediction, label, spacing, labels)
    return {lab: {m: float(row[m]) for m in METRICS} for lab, row in detail.items()}


# -- fast Dice for training/validation -----------------------------------------------------------


def confusion_counts(pred: torch.Tensor, label: torch.Tensor, n_classes: int) -> torch.Tensor:
    """n_classes×n_classes confusion matrix (rows: ground truth, columns: prediction)."""
    idx = label.reshape(-1).long() * n_classes + pred.reshape(-1).long()
    return torch.bincount(idx, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def dice_from_confusion(cm: torch.Tensor) -> list[float]:
    """Foreground Dice per class (1..n-1) with the module's empty conventions (both empty = 1)."""
    cm = cm.double().cpu()
    out = []
    for c in range(1, cm.shape[0]):
        tp = cm[c, c].item()
        denom = cm[c, :].sum().item() + cm[:, c].sum().item()
        out.append(1.0 if denom == 0 else 2.0 * tp / denom)
    return out


# -- writers --------------------------------------------------------------------------------------

CSV_COLUMNS = ("case", "label", "name", "dice", "hd95", "asd", "gt_voxels", "pred_voxels", "note")


def metric_rows(case_id: str, detail: Mapping[int, Mapping[str, Any]], names: Mapping[int, str] | None = None) -> list[dict]:
    """One CSV row per class of one case, from `case_metrics_detail` (or `case_metrics`) output."""
    names = names or {}
    rows = []
    for lab, m in detail.items():
        rows.append({
            "case": case_id,
            "label": int(lab),
            "name": names.get(int(lab), names.get(str(lab), str(lab))) if names else str(lab),
            **{k: m.get(k, "") for k in CSV_COLUMNS[3:]},
        })
    return rows


def write_case_csv(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Per-case × per-class metrics CSV (columns: `CSV_COLUMNS`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(CSV_COLUMNS), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return path


def summarise(rows: Sequence[Mapping[str, Any]]) -> dict:
    """Mean ± std (population) per class and over classes, with counts of convention rows."""
    by_label: dict[int, list] = {}
    names: dict[int, str] = {}
    for r in rows:
        by_label.setdefault(int(r["label"]), []).append(r)
        names[int(r["label"])] = str(r.get("name", r["label"]))
    classes = {}
    for lab in sorted(by_label):
        rs = by_label[lab]
        entry: dict[str, Any] = {"label": lab, "n_cases": len(rs)}
        for m in METRICS:
            v = np.array([float(r[m]) for r in rs], dtype=float)
            entry[m] = {"mean": float(v.mean()), "std": float(v.std())}
        notes = [r.get("note", "") for r in rs]
        entry["both_empty"] = notes.count("both empty")
        entry["empty_prediction"] = notes.count("empty prediction")
        entry["empty_ground_truth"] = notes.count("empty ground truth")
        classes[names[lab]] = entry
    mean = {m: float(np.mean([c[m]["mean"] for c in classes.values()])) if classes else 0.0 for m in METRICS}
    cases = {r["case"] for r in rows}
    return {
        "n_cases": len(cases),
        "classes": classes,
        "mean": mean,
        "conventions": "empty GT and prediction: dice 1, hd95/asd 0; only one empty: dice 0, "
        "hd95/asd = volume diagonal (mm). Distances in mm on the original image grid.",
    }


def write_summary_json(rows: Sequence[Mapping[str, Any]], path: str | Path, extra: Mapping | None = None) -> dict:
    summary = summarise(rows)
    if extra:
        summary.update(extra)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2))
    return summary


def evaluate_predictions(
    predict: Callable[[str], tuple[np.ndarray, Any]],
    cases: Sequence[Mapping[str, Any]],
    labels: Mapping[int, str],
    csv_path: str | Path | None = None,
    summary_path: str | Path | None = None,
) -> tuple[list[dict], dict]:
    """Score `predict(image_path) -> (label map on the original grid, nibabel image)` on `cases`.

    `cases`: datalist entries ``{"id", "image", "label"}``; `labels`: {id: name} of the
    foreground classes. Spacing comes from the original image header (mm). Writes the per-case
    CSV / summary JSON when paths are given; returns (rows, summary).
    """
    import nibabel as nib

    rows: list[dict] = []
    fg = {int(k): v for k, v in labels.items() if int(k) != 0}
    for case in cases:
        pred, img = predict(str(case["image"]))
        gt_img = nib.load(str(case["label"]))
        gt = np.rint(np.asarray(gt_img.dataobj, dtype=np.float32)).astype(np.int16)
        if gt.ndim == 4 and gt.shape[-1] == 1:
            gt = gt[..., 0]
        spacing = [float(z) for z in gt_img.header.get_zooms()[:3]]
        detail = case_metrics_detail(np.asarray(pred), gt, spacing, fg)
        rows += metric_rows(str(case.get("id", Path(str(case["image"])).name)), detail, fg)
    if csv_path is not None:
        write_case_csv(rows, csv_path)
    summary = write_summary_json(rows, summary_path) if summary_path is not None else summarise(rows)
    return rows, summary
