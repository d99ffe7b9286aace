"""Sliding-window inference over a whole preprocessed volume, optionally averaged over mirrorings.

One function for the trainer's validation (logits on the training device) and for whole-file
inference (`medseg_nas.inference.Predictor`: softmax probabilities on the CPU, mirror TTA), so
validation Dice and test Dice come from the same windows: MONAI ``sliding_window_inference``
with patch-size windows and Gaussian blending; volumes smaller than a window are padded by
MONAI and cropped back. Torch and MONAI only, so both callers import it without cycles.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch


def mirror_axes(tta: bool) -> list[tuple[int, ...]]:
    """Flip combinations of the 3 spatial axes (of a B×C×X×Y×Z tensor) averaged for TTA."""
    if not tta:
        return [()]
    axes = (2, 3, 4)
    return [c for r in range(4) for c in itertools.combinations(axes, r)]


def _plain(x) -> torch.Tensor:
    """MetaTensor → plain tensor (the network and the callers need no metadata)."""
    x = torch.as_tensor(x)
    return x.as_tensor() if hasattr(x, "as_tensor") else x


def sliding_window(
    network: torch.nn.Module,
    image,
    roi_size: Sequence[int],
    sw_batch_size: int = 2,
    overlap: float = 0.25,
    device: str | torch.device = "cpu",
    output_device: str | torch.device | None = None,
    tta: bool = False,
    softmax: bool = False,
) -> torch.Tensor:
    """Network output (n_classes×X×Y×Z, on `output_device`, default `device`) of a preprocessed
    C×X×Y×Z image: logits, or with `softmax` float32 probabilities; with `tta` the mean over the
    8 mirrorings (each flipped back) of the logits or probabilities.

    Call under ``torch.inference_mode()``/``no_grad`` (and autocast if wanted); the network must
    be in eval mode.
    """
    from monai.inferers import sliding_window_inference

    x = _plain(image).float()[None].to(device)
    flips = mirror_axes(tta)
    total = None
    for dims in flips:
        xi = torch.flip(x, dims) if dims else x
        out = _plain(sliding_window_inference(
            xi, list(roi_size), sw_batch_size, network, overlap=overlap, mode="gaussian",
            sw_device=device, device=device if output_device is None else output_device,
        ))
        if dims:
            out = torch.flip(out, dims)
        if softmax:
            out = torch.softmax(out.float(), dim=1)
        total = out if total is None else total + out
    return (total if len(flips) == 1 else total / len(flips))[0]
