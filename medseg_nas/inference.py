"""Whole-volume inference shared by `predict`, `evaluate` and the MONAI bundle export.

One source of truth for inference-time preprocessing: `preprocess_spec(data_plan)` is a list of
MONAI transform configs (`{"_target_": "Spacingd", ...}`) built from the saved DataPlan dict.
`predict`/`evaluate` instantiate it with MONAI's ConfigParser and the bundle's inference.json
embeds the very same list, so the bundle (MONAI only, no medseg-nas) and `medseg-nas predict`
run identical transforms:

    LoadImaged (channel first) → EnsureTyped(float32) → Orientationd(RAS) → Spacingd(target,
    bilinear) → intensity normalisation (CT: clip to the dataset's 0.5/99.5 percentiles then
    z-score with the foreground mean/std; other modalities: per-image, per-channel z-score over
    non-zero voxels)

then sliding-window inference over `patch_size` windows (Gaussian blending), softmax, optional
mirror TTA, MONAI `Invertd` back to the original grid (bilinear on probabilities, so labels
are not blocky), argmax. The label map has the input's shape; writers use the input's affine.
"""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg_nas.errors import DataError, MedsegError

CT_NAMES = {"ct", "computed tomography"}


def _first(d: dict, *keys, default=None):
    for k in keys:
        if k in d and d[k] is not None:
            return d[k]
    return default


def _modality(dp: dict) -> str:
    mod = dp.get("modality", "")
    if isinstance(mod, dict):  # MSD dataset.json style {"0": "CT"}
        mod = next(iter(mod.values()), "")
    if isinstance(mod, (list, tuple)):
        mod = mod[0] if mod else ""
    return str(mod).lower()


def spacing_of(dp: dict) -> list[float] | None:
    sp = _first(dp, "target_spacing", "spacing")
    return [float(s) for s in sp] if sp else None


def patch_of(dp: dict) -> list[int]:
    p = _first(dp, "patch_size", "roi_size")
    if not p:
        raise MedsegError("the model's data plan has no patch_size; cannot run sliding-window inference")
    return [int(v) for v in p]


def normalisation_spec(dp: dict, keys: str | list[str] = "image") -> list[dict]:
    """Intensity normalisation as MONAI transform configs, from the DataPlan dict.

    Reads (first found): `normalization`/`normalisation`/`norm` sub-dict or top-level keys
    `clip` / `clip_range` / (`percentile_00_5`, `percentile_99_5`), `mean`, `std`.
    """
    norm = _first(dp, "normalization", "normalisation", "norm", default={})
    if not isinstance(norm, dict):
        norm = {"scheme": norm}
    src = {**dp, **norm}
    scheme = str(_first(src, "scheme", "kind", "type", default="")).lower()
    is_ct = _modality(dp) in CT_NAMES or scheme in ("ct", "clip_zscore", "global")
    if scheme in ("zscore", "nonzero", "per_image", "mri"):
        is_ct = False
    if is_ct:
        clip = _first(src, "clip", "clip_range")
        lo = hi = None
        if clip:
            lo, hi = float(clip[0]), float(clip[1])
        else:
            lo = _first(src, "percentile_00_5", "p005", "lower")
            hi = _first(src, "percentile_99_5", "p995", "upper")
        mean = _first(src, "mean", "fg_mean")
        std = _first(src, "std", "fg_std")
        out = []
        if lo is not None and hi is not None:
            out.append({"_target_": "ScaleIntensityRanged", "keys": keys, "a_min": float(lo), "a_max": float(hi),
                        "b_min": float(lo), "b_max": float(hi), "clip": True})
        if mean is not None and std is not None:
            out.append({"_target_": "NormalizeIntensityd", "keys": keys, "subtrahend": float(mean),
                        "divisor": max(float(std), 1e-8)})
            return out
        return out + [{"_target_": "NormalizeIntensityd", "keys": keys, "nonzero": False, "channel_wise": True}]
    nonzero = bool(_first(src, "nonzero", default=True))
    return [{"_target_": "NormalizeIntensityd", "keys": keys, "nonzero": nonzero, "channel_wise": True}]


def preprocess_spec(dp: dict, keys: str = "image") -> list[dict]:
    """Inference preprocessing (image only) as MONAI transform configs; see the module doc."""
    spec: list[dict] = [
        {"_target_": "LoadImaged", "keys": keys, "ensure_channel_first": True, "image_only": True},
        {"_target_": "EnsureTyped", "keys": keys, "dtype": "$torch.float32"},
        {"_target_": "Orientationd", "keys": keys, "axcodes": "RAS"},
    ]
    sp = spacing_of(dp)
    if sp:
        spec.append({"_target_": "Spacingd", "keys": keys, "pixdim": sp, "mode": "bilinear"})
    spec += normalisation_spec(dp, keys)
    return spec


def build_transforms(spec: list[dict]):
    """Instantiate a transform-config list into a MONAI Compose (as the bundle would)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser({"imports": ["$import torch"], "t": {"_target_": "Compose", "transforms": copy.deepcopy(spec)}})
    return parser.get_parsed_content("t")


def mirror_axes(tta: bool) -> list[tuple[int, ...]]:
    """Flip combinations of the 3 spatial axes (of a B×C×X×Y×Z tensor) averaged for TTA."""
    if not tta:
        return [()]
    axes = (2, 3, 4)
    return [c for r in range(4) for c in itertools.combinations(axes, r)]


@torch.no_grad()
def sliding_window_probs(
    network,
    image: torch.Tensor,
    patch_size,
    device: str | torch.device = "cpu",
    sw_batch_size: int = 2,
    overlap: float = 0.25,
    tta: bool = False,
) -> torch.Tensor:
    """Softmax probabilities (C×X×Y×Z, float32, on CPU) of a preprocessed C×X×Y×Z image."""
    from monai.inferers import sliding_window_inference

    x = torch.as_tensor(image).float()[None].to(device)
    total = None
    flips = mirror_axes(tta)
    for dims in flips:
        xi = torch.flip(x, dims) if dims else x
        logits = sliding_window_inference(
            xi, list(patch_size), sw_batch_size, network, overlap=overlap, mode="gaussian",
            sw_device=device, device="cpu",
        )
        logits = torch.as_tensor(logits).float()
        if dims:
            logits = torch.flip(logits, dims)
        p = torch.softmax(logits, dim=1)
        total = p if total is None else total + p
    return (total / len(flips))[0]


def resolve_device(device: str = "auto") -> torch.device:
    if device in ("auto", "", None):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise MedsegError(f"device {device!r} requested but CUDA is not available")
    return torch.device(device)


class Predictor:
    """NIfTI path → label map on the input grid, for one loaded model (see module doc)."""

    def __init__(self, model, device: str = "auto", tta: bool = False, sw_batch_size: int = 2, overlap: float = 0.25):
        self.model = model
        self.device = resolve_device(device)
        self.model.network.to(self.device).eval()
        self.tta = tta
        self.sw_batch_size = sw_batch_size
        self.overlap = overlap
        self.spec = preprocess_spec(model.data_plan)
        self.transforms = build_transforms(self.spec)
        self.patch = patch_of(model.data_plan)

    def preprocess(self, path: str | Path) -> dict:
        try:
            d = self.transforms({"image": str(path)})
        except Exception as exc:
            raise DataError(f"cannot read/preprocess {path}: {str(exc).splitlines()[-1][:300]}") from None
        c = d["image"].shape[0]
        if c != self.model.in_channels:
            raise DataError(
                f"{path} has {c} channel(s) but the model expects {self.model.in_channels} "
                f"(modality {self.model.data_plan.get('modality', '?')})"
            )
        return d

    def probabilities(self, d: dict) -> torch.Tensor:
        """Probabilities on the preprocessed grid."""
        return sliding_window_probs(
            self.model.network, d["image"], self.patch, self.device, self.sw_batch_size, self.overlap, self.tta
        )

    def invert(self, d: dict, probs: torch.Tensor) -> np.ndarray:
        """Probabilities on the preprocessed grid → uint8 label map on the original grid."""
        from monai.data import MetaTensor
        from monai.transforms import Invertd

        d = dict(d)
        d["pred"] = MetaTensor(probs, meta=copy.deepcopy(d["image"].meta))
        inv = Invertd(keys="pred", transform=self.transforms, orig_keys="image", nearest_interp=False)
        out = inv(d)["pred"]
        return torch.argmax(torch.as_tensor(out), dim=0).cpu().numpy().astype(np.uint8)

    def __call__(self, path: str | Path) -> tuple[np.ndarray, Any]:
        """(label map with the input's spatial shape, the input's nibabel image)."""
        import nibabel as nib

        d = self.preprocess(path)
        labels = self.invert(d, self.probabilities(d))
        img = nib.load(str(path))
        shape = tuple(img.shape[:3])
        if labels.shape != shape:  # should not happen: Invertd restores the grid
            raise MedsegError(f"internal: prediction shape {labels.shape} != input shape {shape} for {path}")
        return labels, img


def save_label_nifti(labels: np.ndarray, reference, path: str | Path) -> Path:
    """Write `labels` with the reference image's exact affine and header (uint8 data)."""
    import nibabel as nib

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = reference.header.copy()
    header.set_data_dtype(np.uint8)
    if len(header.get_data_shape()) != 3:
        header.set_data_shape(labels.shape)
    out = nib.Nifti1Image(labels.astype(np.uint8), reference.affine, header)
    out.set_qform(reference.affine, code=int(reference.header["qform_code"]) or 1)
    out.set_sform(reference.affine, code=int(reference.header["sform_code"]) or 1)
    out.header.set_slope_inter(1, 0)
    nib.save(out, str(path))
    return path
