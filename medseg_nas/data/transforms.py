"""MONAI transform pipelines built from a DataPlan.

Deterministic part (cached): load → channel first → orient to `plan.axcodes` (RAS, thick axis
last) → resample to `plan.target_spacing` → crop to the foreground of the image → normalise
per modality → labels to integer-valued float. Training adds padding to the patch size, pos/neg
patch sampling and augmentation ("none" | "light" | "full").
"""

from __future__ import annotations

import math

import numpy as np
import torch
from monai.transforms import (
    Compose,
    CropForegroundd,
    DeleteItemsd,
    EnsureChannelFirstd,
    EnsureTyped,
    FgBgToIndicesd,
    LoadImaged,
    MapTransform,
    Orientationd,
    RandAdjustContrastd,
    RandAffined,
    RandCropByPosNegLabeld,
    RandFlipd,
    RandGaussianNoised,
    RandGaussianSmoothd,
    RandScaleIntensityd,
    RandShiftIntensityd,
    Spacingd,
    SpatialPadd,
)

from medseg_nas.errors import ConfigError


def above_minimum(x):
    """Foreground for cropping: voxels above the image minimum (air in CT, zero background in MRI)."""
    return x > x.min()


class NormalizeByPlan(MapTransform):
    """Per-channel normalisation: CT = clip to the fingerprint's [0.5, 99.5] percentiles then
    z-score with the dataset foreground mean/std; MRI (anything else) = per-image z-score."""

    def __init__(self, keys, normalization: list[dict]):
        super().__init__(keys)
        self.normalization = normalization

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            x = d[key]
            out = x.clone().float() if isinstance(x, torch.Tensor) else torch.as_tensor(np.array(x), dtype=torch.float32)
            for c in range(out.shape[0]):
                norm = self.normalization[c] if c < len(self.normalization) else {"scheme": "zscore"}
                ch = out[c]
                if norm["scheme"] == "ct":
                    lo, hi = norm["clip"]
                    ch = (ch.clamp(lo, hi) - norm["mean"]) / norm["std"]
                else:
                    ch = (ch - ch.mean()) / ch.std().clamp_min(1e-8)
                out[c] = ch
            d[key] = out
        return d


class RoundLabeld(MapTransform):
    """Labels as integer-valued float32 (files may store labels as float32 or int)."""

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = torch.round(torch.as_tensor(d[key])).to(torch.float32)
        return d


def preprocess_transforms(plan, with_label: bool = True) -> Compose:
    """The deterministic pipeline (invertible where it changes geometry, so `Invertd` maps
    predictions back to the original grid). Output `image` C×X×Y×Z (+ `label` 1×X×Y×Z)."""
    keys = ["image", "label"] if with_label else ["image"]
    modes = ("bilinear", "nearest") if with_label else ("bilinear",)
    t = [
        LoadImaged(keys, image_only=True),
        EnsureChannelFirstd(keys),
        Orientationd(keys, axcodes=plan.axcodes, labels=(("L", "R"), ("P", "A"), ("I", "S"))),
    ]
    if plan.target_spacing:  # empty only in a hand-written model file's plan: keep the image's grid
        t.append(Spacingd(keys, pixdim=plan.target_spacing, mode=modes))
    t += [
        CropForegroundd(keys, source_key="image", select_fn=above_minimum, allow_smaller=True,
                        start_coord_key=None, end_coord_key=None),
        NormalizeByPlan(["image"], plan.normalization),
    ]
    if with_label:
        t.append(RoundLabeld(["label"]))
    t.append(EnsureTyped(keys, dtype=torch.float32))
    return Compose(t)


def inference_transforms(plan) -> Compose:
    """What `predict` applies to a new image (use the same object for `Invertd`)."""
    return preprocess_transforms(plan, with_label=False)


def augmentation_transforms(plan, level: str) -> list:
    keys = ["image", "label"]
    if level not in ("none", "light", "full"):
        raise ConfigError(f"data.augment must be none, light or full, got {level!r}")
    if level == "none":
        return []
    t = [RandFlipd(keys, prob=0.5, spatial_axis=a) for a in range(3)]
    t += [RandScaleIntensityd("image", factors=0.1, prob=0.5), RandShiftIntensityd("image", offsets=0.1, prob=0.5)]
    if level == "full":
        sp = plan.target_spacing
        anisotropic = max(sp) >= 2 * min(sp)
        rot = (0.0, 0.0, math.pi / 12) if anisotropic else (math.pi / 12,) * 3  # in-plane only for thick slices
        t += [
            RandAffined(keys, prob=0.25, rotate_range=rot, scale_range=(0.15, 0.15, 0.0 if anisotropic else 0.15),
                        mode=("bilinear", "nearest"), padding_mode="border"),
            RandGaussianNoised("image", prob=0.15, std=0.1),
            RandGaussianSmoothd("image", prob=0.1, sigma_x=(0.5, 1.0), sigma_y=(0.5, 1.0), sigma_z=(0.5, 1.0)),
            RandAdjustContrastd("image", prob=0.15, gamma=(0.7, 1.5)),
        ]
    return t


def train_transforms(plan, augment: str = "full", pos_fraction: float = 0.67) -> Compose:
    """Deterministic prefix (cached by CacheDataset up to the first random transform) + one random
    patch of `plan.patch_size` (foreground-centred with probability `pos_fraction`) + augmentation."""
    keys = ["image", "label"]
    pos = float(np.clip(pos_fraction, 0.0, 1.0))
    pre = list(preprocess_transforms(plan, with_label=True).transforms)
    t = pre + [
        SpatialPadd(keys, spatial_size=plan.patch_size, mode="constant"),
        FgBgToIndicesd("label"),
        RandCropByPosNegLabeld(keys, label_key="label", spatial_size=plan.patch_size, pos=pos, neg=1.0 - pos,
                               num_samples=1, fg_indices_key="label_fg_indices", bg_indices_key="label_bg_indices",
                               allow_smaller=False),
        DeleteItemsd(["label_fg_indices", "label_bg_indices"]),
    ]
    t += augmentation_transforms(plan, augment)
    t.append(EnsureTyped(keys, dtype=torch.float32, track_meta=False))
    return Compose(t)
