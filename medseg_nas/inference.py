"""Whole-volume inference shared by `predict`, `evaluate` and the MONAI bundle export.

`predict`/`evaluate` preprocess with the training code's own `medseg_nas.data.inference_transforms`
(from the DataPlan saved in the checkpoint). The MONAI bundle cannot import medseg-nas, so
`preprocess_spec(plan)` spells the same pipeline as MONAI transform configs
(`{"_target_": "Spacingd", ...}`) for inference.json; tests check both give the same output:

    LoadImaged → channel first → Orientationd(plan.axcodes) → Spacingd(target, bilinear) → crop
    to the above-minimum foreground → normalisation (CT: clip to the dataset's 0.5/99.5
    percentiles, z-score with the foreground mean/std; others: per-image z-score per channel)

then sliding-window inference over `patch_size` windows (`medseg_nas.sliding_window`: Gaussian
blending, softmax, optional mirror TTA), MONAI `Invertd` back to the original grid (bilinear on
probabilities, so labels are not blocky), argmax. The label map has the input's shape; writers use the input's affine.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg_nas.device import resolve_device
from medseg_nas.data import DataPlan, inference_transforms
from medseg_nas.errors import DataError, MedsegError
from medseg_nas.sliding_window import sliding_window
from medseg_nas.volume_checks import check_header, check_voxels


def normalisation_spec(plan: DataPlan, keys: str | list[str] = "image") -> list[dict]:
    """Intensity normalisation as MONAI transform configs, equal to medseg_nas.data's NormalizeByPlan.

    DataPlan format: `normalization` = one dict per channel, `{"scheme": "zscore"}` (per-image
    z-score over all voxels) or `{"scheme": "ct", "clip": [lo, hi], "mean", "std"}` (clip, then
    z-score with dataset statistics). A plan without that list (hand-written) gets per-image z-score.
    """
    norms = plan.normalization or [{"scheme": "zscore"}]
    schemes = {str(n.get("scheme", "zscore")).lower() for n in norms}
    if schemes <= {"zscore"}:
        return [{"_target_": "NormalizeIntensityd", "keys": keys, "nonzero": False, "channel_wise": True}]
    if schemes == {"ct"} and all(n == norms[0] for n in norms) and "clip" in norms[0]:
        n = norms[0]
        lo, hi = float(n["clip"][0]), float(n["clip"][1])
        return [
            {"_target_": "ScaleIntensityRanged", "keys": keys, "a_min": lo, "a_max": hi, "b_min": lo, "b_max": hi,
             "clip": True},
            {"_target_": "NormalizeIntensityd", "keys": keys, "subtrahend": float(n["mean"]),
             "divisor": max(float(n["std"]), 1e-8)},
        ]
    raise MedsegError(f"no MONAI-only equivalent for the per-channel normalisation {norms}")


def preprocess_spec(plan: DataPlan, keys: str = "image") -> list[dict]:
    """Inference preprocessing (image only) as MONAI transform configs, mirroring
    medseg_nas.data.inference_transforms (load, channel first, orientation, spacing, crop to the
    image's above-minimum foreground, normalisation)."""
    spec: list[dict] = [
        {"_target_": "LoadImaged", "keys": keys, "image_only": True},
        {"_target_": "EnsureChannelFirstd", "keys": keys},
        {"_target_": "Orientationd", "keys": keys, "axcodes": str(plan.axcodes),
         "labels": [["L", "R"], ["P", "A"], ["I", "S"]]},
    ]
    if plan.target_spacing:
        spec.append({"_target_": "Spacingd", "keys": keys, "pixdim": list(plan.target_spacing), "mode": "bilinear"})
    spec.append({"_target_": "CropForegroundd", "keys": keys, "source_key": keys if isinstance(keys, str) else keys[0],
                 "select_fn": "$lambda x: x > x.min()", "allow_smaller": True,
                 "start_coord_key": None, "end_coord_key": None})
    spec += normalisation_spec(plan, keys)
    spec.append({"_target_": "EnsureTyped", "keys": keys, "dtype": "$torch.float32"})
    return spec


def inference_compose(plan: DataPlan):
    """The training code's own inference transforms; for a hand-written plan without per-channel
    normalisation the MONAI-only spec, as such plans have always been preprocessed (the two agree
    by construction; tests/test_export.py checks it)."""
    if plan.normalization:
        return inference_transforms(plan)
    return build_transforms(preprocess_spec(plan))


def above_minimum(x):
    """CropForegroundd's select_fn: voxels above the image minimum (the bundle spells it `$lambda`)."""
    return x > x.min()


# the only `$` expressions preprocess_spec writes, and the objects they stand for; build_transforms
# maps these and refuses any other `$`/`@`/`%` string instead of evaluating it
SPEC_EXPRESSIONS = {"$lambda x: x > x.min()": above_minimum, "$torch.float32": torch.float32}


def _literal(value: Any, target: str) -> Any:
    if isinstance(value, str) and value[:1] in ("$", "@", "%"):
        if value in SPEC_EXPRESSIONS:
            return SPEC_EXPRESSIONS[value]
        raise MedsegError(f"refusing to evaluate {value[:80]!r} given to {target}")
    if isinstance(value, list):
        return [_literal(v, target) for v in value]
    return value


def build_transforms(spec: list[dict]):
    """Instantiate a transform-config list into a MONAI Compose (what the bundle's parser builds),
    with MONAI's classes directly: no config parser, so no string is ever evaluated."""
    import monai.transforms as mt

    out = []
    for item in spec:
        kwargs = dict(item)
        target = kwargs.pop("_target_")
        cls = getattr(mt, target, None)
        if not isinstance(cls, type) or not issubclass(cls, mt.Transform):
            raise MedsegError(f"unknown MONAI transform {target!r} in the preprocessing spec")
        out.append(cls(**{k: _literal(v, target) for k, v in kwargs.items()}))
    return mt.Compose(out)


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of a chain. MONAI wraps every loader failure as "applying transform
    <LoadImaged object …>", which names neither the file's problem nor anything the user can fix."""
    seen = {id(exc)}
    while True:
        inner = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        if inner is None or id(inner) in seen:
            return exc
        seen.add(id(inner))
        exc = inner


def describe_error(exc: BaseException, limit: int = 300) -> str:
    """`Type: message` of the root cause, on one line."""
    cause = root_cause(exc)
    text = " ".join(str(cause).split())
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


def check_volume(path: str | Path):
    """The input's NIfTI image, refused with one DataError when unreadable, not a volume (a 2D
    slice would otherwise fail deep inside sliding-window inference) or not segmentable
    (non-finite or complex voxels, degenerate header: medseg_nas.volume_checks)."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
    except Exception as exc:
        raise DataError(f"cannot read {path}: {describe_error(exc)}") from None
    shape = tuple(int(n) for n in img.shape)
    if len(shape) < 3:
        raise DataError(f"{path} is a {len(shape)}D image with shape {shape}; predict needs a 3D volume "
                        "(X×Y×Z, or X×Y×Z×C with one channel per modality)")
    check_header(img, path, "")
    try:
        data = np.asanyarray(img.dataobj)
    except Exception as exc:
        raise DataError(f"cannot read {path}: {describe_error(exc)}") from None
    # one NaN voxel would make every window it touches NaN and the whole mask background
    check_voxels(data, path, "")
    return img


class Predictor:
    """NIfTI path → label map on the input grid, for one loaded model (see module doc)."""

    def __init__(self, model, device: str = "auto", tta: bool = False, sw_batch_size: int = 2, overlap: float = 0.25):
        self.model = model
        self.device = resolve_device(device)
        self.network = self.fast_network(model.network, self.device)
        self.tta = tta
        self.sw_batch_size = sw_batch_size
        self.overlap = overlap
        self.transforms = inference_compose(model.data_plan)
        self.patch = list(model.data_plan.patch_size)

    @staticmethod
    def fast_network(net, device: torch.device):
        """On CPU, the trainer's layout: InstanceNorm as group_norm + channels_last_3d (same math,
        ~1.5× faster inference). TorchScript modules and GPU runs are used as they are."""
        net = net.to(device).eval()
        if device.type != "cpu" or isinstance(net, torch.jit.ScriptModule):
            return net
        from medseg_nas.train.layout import swap_instance_norm

        fast = copy.deepcopy(net)
        swap_instance_norm(fast)
        fast = fast.to(memory_format=torch.channels_last_3d)

        class _ChannelsLast(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, x):
                return self.inner(x.contiguous(memory_format=torch.channels_last_3d)).contiguous()

        return _ChannelsLast(fast).eval()

    def preprocess(self, path: str | Path) -> dict:
        import warnings

        check_volume(path)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # MONAI deprecation notices, once per case
                d = self.transforms({"image": str(path)})
        except Exception as exc:
            raise DataError(f"cannot read/preprocess {path}: {describe_error(exc)}") from None
        c = d["image"].shape[0]
        if c != self.model.in_channels:
            raise DataError(
                f"{path} has {c} channel(s) but the model expects {self.model.in_channels} "
                f"(modality {self.model.data_plan.to_dict()['modality']})"
            )
        return d

    @torch.no_grad()
    def probabilities(self, d: dict) -> torch.Tensor:
        """Softmax probabilities (C×X×Y×Z, float32, on the CPU) on the preprocessed grid."""
        return sliding_window(
            self.network, d["image"], self.patch, self.sw_batch_size, self.overlap, self.device,
            output_device="cpu", tta=self.tta, softmax=True,
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
