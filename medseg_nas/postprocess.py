"""Keep the largest connected component of each foreground class (nnU-Net's post-processing step).

On ACDC the retrained pick's HD95 (~50 mm mean) comes from stray islands far from the heart: one
voxel cluster on the wrong side of the field of view sets the 95th-percentile distance, whatever
the Dice. nnU-Net removes all but the largest component per class when that helps on its
cross-validation folds. Here the decision is made per class on the retrain's held-out monitor
cases (`decide_largest_component`, called by medseg_nas.stages.postprocess_decision after every
retrain), travels in the model file (`extra["postprocess"]`, and the TorchScript metadata), and
is applied by `evaluate`, `predict` and the MONAI bundle. `evaluate` also keeps measuring every
class reduced (summary `largest_component`) and the raw prediction (summary `raw`), so the
decision can be checked on the test split. scipy.ndimage.label does the labelling with full
connectivity (26-neighbourhood in 3D, as nnU-Net). MONAI's KeepLargestConnectedComponent does the
same, and the exported bundle uses it, but it needs scikit-image, which only the `export` extra
installs; evaluate and predict should not depend on that extra.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def keep_largest_component(label_map: np.ndarray, classes: Iterable[int]) -> np.ndarray:
    """`label_map` with every voxel of class c outside c's largest connected component set to
    background (0), for each c in `classes`, each class on its own."""
    from scipy import ndimage

    out = np.array(label_map, copy=True)
    full = ndimage.generate_binary_structure(out.ndim, out.ndim)
    for c in classes:
        components, n = ndimage.label(out == int(c), structure=full)
        if n > 1:
            sizes = np.bincount(components.ravel())[1:]
            out[(components > 0) & (components != 1 + int(np.argmax(sizes)))] = 0
    return out


POSTPROCESS_MODES = ("auto", "none", "largest_component")


def decide_largest_component(per_case: list[dict], classes: dict[int, str]) -> dict:
    """Which classes keep only their largest component, decided on held-out cases as nnU-Net
    decides it on its validation folds (nnU-Net v2 `determine_postprocessing`, per class): a class
    gets it only if its mean Dice over those cases is strictly higher with it than without it,
    so a tie or a loss leaves the prediction alone.

    `per_case`: evaluate_cases's entries ({"classes": {name: {"dice": ..}}, "largest_component":
    {"classes": ...}}), for the same cases, raw and reduced. Returns the decision record that the
    model file carries (`extra["postprocess"]`).
    """
    if not per_case:
        raise ValueError("no held-out cases to decide the post-processing on")
    chosen, per_class = [], {}
    for c, name in sorted(classes.items()):
        raw = float(np.mean([e["classes"][name]["dice"] for e in per_case]))
        lcc = float(np.mean([e["largest_component"]["classes"][name]["dice"] for e in per_case]))
        per_class[name] = {"class": int(c), "dice_raw": round(raw, 4), "dice_largest_component": round(lcc, 4),
                           "applied": lcc > raw}
        if lcc > raw:
            chosen.append(int(c))
    return {"largest_component": chosen, "mode": "auto", "decided_on": [str(e["id"]) for e in per_case],
            "per_class": per_class,
            "rule": "per class, kept to its largest connected component only if that raises its mean Dice over the "
                    "held-out monitor cases (nnU-Net's determine_postprocessing)"}


def fixed_decision(mode: str, classes: dict[int, str]) -> dict:
    """The decision record for `predict.postprocess: none | largest_component` (no measurement)."""
    chosen = [int(c) for c in sorted(classes)] if mode == "largest_component" else []
    return {"largest_component": chosen, "mode": mode, "decided_on": [], "per_class": {},
            "rule": f"predict.postprocess: {mode} (set, not measured)"}


def postprocess_classes(extra: dict | None) -> list[int]:
    """The classes a model's decision reduces to their largest component ([] without a decision)."""
    decision = (extra or {}).get("postprocess") or {}
    return [int(c) for c in decision.get("largest_component") or []]


def apply_postprocess(label_map: np.ndarray, classes: list[int]) -> np.ndarray:
    """The label map a model with decision `classes` outputs (the input itself when there is none)."""
    return keep_largest_component(label_map, classes) if classes else label_map
