"""Small fixtures for the pipeline-stage tests: a random network checkpoint and NIfTI volumes."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from medseg_nas.model_io import save_model
from medseg_nas.space import Genome, NetworkPlan, build_network

GENOME = Genome(inputs=(0, 1, 1), ops=("conv3d_3", "conv2d_3", "identity", "p3d_3"), n_c=2, n_f=3, lr=1e-3)
# a DataPlan.to_dict() as medseg_nas.data writes it
PLAN = {"target_spacing": [1.5, 1.5, 2.0], "patch_size": [32, 32, 16], "network_plan": NetworkPlan().to_dict(),
        "in_channels": 1, "n_classes": 3, "labels": {"0": "background", "1": "a", "2": "b"},
        "modality": {"0": "MRI"}, "normalization": [{"scheme": "zscore"}], "axcodes": "RAS",
        "median_shape": [30, 30, 24], "version": 1}
# an oblique, anisotropic, left-handed grid: exercises orientation + spacing inversion
AFFINE = np.array([[-1.2, 0.0, 0.0, 30.0], [0.0, 1.1, 0.05, -20.0], [0.0, 0.0, 2.5, 10.0], [0, 0, 0, 1]])


def blob_volume(shape=(37, 41, 19), seed=0, channels=1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    g = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    r = np.sqrt(sum((x - c) ** 2 for x, c in zip(g, rng.uniform(-0.2, 0.2, 3))))
    vol = (100.0 + 300.0 * (r < 0.5) + rng.normal(0, 5, shape)).astype(np.float32)
    if channels > 1:
        vol = np.stack([vol * (1 + 0.1 * c) for c in range(channels)], axis=-1)
    return vol


def write_nifti(path: Path, data: np.ndarray, affine=AFFINE) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def make_checkpoint(path: Path, in_channels=1, n_classes=3, plan=None, genome=GENOME, seed=0) -> Path:
    torch.manual_seed(seed)
    net = build_network(genome, in_channels, n_classes, NetworkPlan())
    return save_model(path, net, genome, in_channels, n_classes, NetworkPlan(), dict(plan or PLAN))
