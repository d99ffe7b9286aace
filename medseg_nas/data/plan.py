"""The DataPlan: how volumes are oriented, resampled, normalised and cut into patches, and the
network's downsampling plan that follows from it. Saved in run dirs and model checkpoints so
`predict` reproduces the exact preprocessing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from medseg_nas.errors import ConfigError
from medseg_nas.space.plan import MAX_LEVELS, NetworkPlan, plan_from_spacing

from medseg_nas.data.fingerprint import Fingerprint

PLAN_VERSION = 1


@dataclass
class DataPlan:
    target_spacing: list[float]  # mm per axis of the network layout (X, Y, Z); empty: the image's own grid
    patch_size: list[int]  # multiple of network_plan.divisor(4)
    network_plan: NetworkPlan
    in_channels: int
    n_classes: int  # including background
    labels: dict[int, str]
    modality: dict[int, str]
    normalization: list[dict]  # per channel: {"scheme": "zscore"} or {"scheme": "ct", "clip", "mean", "std"}; missing: zscore
    axcodes: str = "RAS"  # orientation of the network layout; the thick-slice axis is last
    median_shape: list[int] = field(default_factory=list)  # after resampling to target_spacing
    version: int = PLAN_VERSION

    def to_dict(self) -> dict:
        return {
            "target_spacing": [float(s) for s in self.target_spacing],
            "patch_size": [int(p) for p in self.patch_size],
            "network_plan": self.network_plan.to_dict(),
            "in_channels": int(self.in_channels),
            "n_classes": int(self.n_classes),
            "labels": {str(k): v for k, v in self.labels.items()},
            "modality": {str(k): v for k, v in self.modality.items()},
            "normalization": [dict(n) for n in self.normalization],
            "axcodes": self.axcodes,
            "median_shape": [int(s) for s in self.median_shape],
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "DataPlan":
        return cls(
            target_spacing=[float(s) for s in d["target_spacing"]], patch_size=[int(p) for p in d["patch_size"]],
            network_plan=NetworkPlan.from_dict(d["network_plan"]), in_channels=int(d["in_channels"]),
            n_classes=int(d["n_classes"]), labels={int(k): v for k, v in d["labels"].items()},
            modality={int(k): v for k, v in d["modality"].items()},
            normalization=[dict(n) for n in d["normalization"]], axcodes=d.get("axcodes", "RAS"),
            median_shape=[int(s) for s in d.get("median_shape", [])], version=int(d.get("version", PLAN_VERSION)),
        )

    @classmethod
    def from_model_file(cls, d: dict, in_channels: int, n_classes: int, network_plan: NetworkPlan,
                        labels: dict[int, str]) -> "DataPlan":
        """The plan of a checkpoint or export, after medseg_nas.plan_schema has passed it.

        Plans written by `make_plan` hold every field. Older and hand-written ones may spell
        `spacing` / `roi_size`, give the modality as a name or a list, hold null fields, or leave
        out what the model file keeps beside the plan (sizes, network plan, labels) or what has a
        default: no normalisation is per-image z-score, no spacing keeps the image's grid.
        """
        def given(*keys):
            return next((d[k] for k in keys if d.get(k) is not None), None)

        modality = given("modality") or {}
        if isinstance(modality, str):
            modality = {0: modality}
        norm = given("normalization") or []
        return cls.from_dict({
            "target_spacing": given("target_spacing", "spacing") or [],
            "patch_size": given("patch_size", "roi_size"),
            "network_plan": given("network_plan") or network_plan.to_dict(),
            "in_channels": given("in_channels") or in_channels,
            "n_classes": given("n_classes") or n_classes,
            "labels": given("labels") or labels,
            "modality": dict(enumerate(modality)) if isinstance(modality, list) else modality,
            "normalization": [norm] if isinstance(norm, dict) else norm,
            "axcodes": given("axcodes") or "RAS",
            "median_shape": given("median_shape") or [],
            "version": PLAN_VERSION if given("version") is None else given("version"),
        })


def choose_axcodes(fp: Fingerprint) -> tuple[str, list[int]]:
    """RAS, permuted so that a thick-slice axis (if any) is the last one (Z of the network)."""
    order = [0, 1, 2]
    if fp.thick_axis is not None and fp.thick_axis != 2:
        order = [a for a in order if a != fp.thick_axis] + [fp.thick_axis]
    return "".join("RAS"[a] for a in order), order


def plan_patch(shape, spacing, max_voxels: int) -> list[int]:
    """nnU-Net-like: start from the median (resampled) shape, shrink the physically longest axis
    until the patch fits `max_voxels`, round down to multiples of 8 (16 for axes >= 48)."""
    p = np.maximum(np.asarray(shape, float), 8.0)
    sp = np.asarray(spacing, float)
    while np.prod(p) > max_voxels and np.any(p > 8.0):
        # only axes still above the minimum can shrink (picking one at 8 looped forever)
        i = int(np.argmax(np.where(p > 8.0, p * sp, -np.inf)))
        p[i] = max(8.0, p[i] * 0.9)
    out = []
    for v in p:  # round down (a patch no larger than the median case), at least 8
        m = 16 if v >= 48 else 8
        out.append(max(8, int(math.floor(v / m)) * m))
    while np.prod(out) > max_voxels and max(out) > 8:
        i = int(np.argmax(np.where(np.asarray(out) > 8, np.asarray(out) * sp, -np.inf)))
        out[i] -= 16 if out[i] >= 64 else 8
    return [int(v) for v in out]


def check_patch_fits(patch: list[int], median_shape: list[int]) -> None:
    """Refuse a given patch far beyond the data (an axis over 4x the median case and over 8x its
    voxels): the network would see mostly padding, and each step would cost that much more."""
    over = [p > 4 * max(n, 1) for p, n in zip(patch, median_shape)]
    ratio = float(np.prod(patch)) / max(float(np.prod([max(n, 1) for n in median_shape])), 1.0)
    if any(over) and ratio > 8:
        raise ConfigError(
            f"data.patch_size {patch} is far beyond the data: the median case is {median_shape} voxels at the target "
            f"spacing, so a patch would be {ratio:,.0f}x its size and mostly padding; use at most "
            f"{[4 * max(n, 1) for n in median_shape]} (or leave data.patch_size empty to plan it)")


def make_plan(fingerprint: Fingerprint, data_cfg) -> DataPlan:
    """DataPlan from a fingerprint and `DataConfig` (target_spacing / patch_size override the
    planned ones; both are given in the network layout's axis order X, Y, Z)."""
    fp = fingerprint
    axcodes, order = choose_axcodes(fp)
    med_sp = [fp.median_spacing[a] for a in order]
    med_sh = [fp.median_shape[a] for a in order]
    if data_cfg.target_spacing:
        target = [float(s) for s in data_cfg.target_spacing]
        if len(target) != 3 or min(target) <= 0:
            raise ConfigError(f"data.target_spacing must be 3 positive numbers (mm), got {data_cfg.target_spacing}")
    else:
        target = [float(s) for s in med_sp]
    shape = [max(1, int(round(n * s / t))) for n, s, t in zip(med_sh, med_sp, target)]
    if data_cfg.patch_size:
        patch = [int(p) for p in data_cfg.patch_size]
        if len(patch) != 3 or min(patch) < 4:
            raise ConfigError(f"data.patch_size must be 3 integers >= 4, got {data_cfg.patch_size}")
        check_patch_fits(patch, shape)
    else:
        patch = plan_patch(shape, target, int(data_cfg.max_patch_voxels))
    net = plan_from_spacing(target, patch)
    div = net.divisor(MAX_LEVELS)
    if any(p % d for p, d in zip(patch, div)):  # cannot happen with plan_from_spacing; keep the contract explicit
        raise ConfigError(f"data.patch_size {patch} is not a multiple of the network divisor {div}")
    norm = []
    for c in range(fp.in_channels):
        name = fp.modality.get(c, "MRI")
        st = fp.intensity[c]
        if "CT" in name.upper():
            norm.append({"scheme": "ct", "clip": [st["p00_5"], st["p99_5"]], "mean": st["mean"], "std": max(st["std"], 1e-8)})
        else:
            norm.append({"scheme": "zscore"})
    return DataPlan(target_spacing=target, patch_size=patch, network_plan=net, in_channels=fp.in_channels,
                    n_classes=fp.n_classes, labels=dict(fp.labels), modality=dict(fp.modality),
                    normalization=norm, axcodes=axcodes, median_shape=shape)
