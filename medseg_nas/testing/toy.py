"""A tiny in-memory DataBundle (touching sphere + box phantoms) for tests and benchmarks.

Duck-types `medseg_nas.data.DataBundle` as far as the Trainer needs: `train` (MONAI Dataset,
random patches, pos/neg sampling like the real pipeline), `val`/`test` (whole volumes),
`reseed(seed)`, and `plan` with `patch_size`, `network_plan`, `in_channels`, `n_classes`,
`labels`, `target_spacing`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medseg_nas.space.plan import NetworkPlan


@dataclass
class ToyPlan:
    patch_size: tuple[int, int, int] = (32, 32, 32)
    network_plan: NetworkPlan = field(default_factory=NetworkPlan)
    in_channels: int = 1
    n_classes: int = 3
    labels: dict = field(default_factory=lambda: {0: "background", 1: "sphere", 2: "box"})
    target_spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)


def toy_case(shape=(40, 40, 40), seed: int = 0, noise: float = 0.35, channels: int = 1) -> dict:
    """One phantom: a sphere (label 1) and a box (label 2) touching it, in noisy intensities."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in shape)
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij"))
    r = rng.uniform(0.15, 0.22) * min(shape)
    centre = np.array([rng.uniform(r + 2, n - r - 2) for n in shape], dtype=np.float32)
    label = np.zeros(shape, np.uint8)
    sphere = ((grid - centre[:, None, None, None]) ** 2).sum(0) <= r * r
    half = [max(2, int(r * rng.uniform(0.5, 0.8))) for _ in shape]
    axis = int(rng.integers(3))
    side = 1 if centre[axis] < shape[axis] / 2 else -1  # grow the box towards the larger side
    lo = [int(c) - h for c, h in zip(centre, half)]
    hi = [int(c) + h for c, h in zip(centre, half)]
    if side > 0:
        lo[axis], hi[axis] = int(centre[axis] + r) - 1, min(shape[axis] - 1, int(centre[axis] + r) + 2 * half[axis])
    else:
        lo[axis], hi[axis] = max(0, int(centre[axis] - r) - 2 * half[axis]), int(centre[axis] - r) + 1
    sl = tuple(slice(max(0, a), min(n, b)) for a, b, n in zip(lo, hi, shape))
    label[sl] = 2
    label[sphere] = 1
    base = np.select([label == 1, label == 2], [1.0, -1.0], 0.0).astype(np.float32)
    image = np.stack([base * (1 + 0.2 * c) + rng.normal(0, noise, shape).astype(np.float32) for c in range(channels)])
    return {"image": image.astype(np.float32), "label": label[None]}


class ToyBundle:
    """`n_train` / `n_val` phantoms of `shape`; random `patch` crops (2/3 centred on foreground)."""

    def __init__(self, n_train: int = 4, n_val: int = 2, shape=(40, 40, 40), patch=(32, 32, 32), seed: int = 0,
                 channels: int = 1, num_workers: int = 0, augment: bool = True) -> None:
        from monai.data import Dataset
        from monai.transforms import Compose, RandCropByPosNegLabeld, RandFlipd

        self.plan = ToyPlan(patch_size=tuple(int(p) for p in patch), in_channels=channels)
        cases = [toy_case(shape, seed * 1000 + i, channels=channels) for i in range(n_train + n_val)]
        for i, c in enumerate(cases):
            c["id"] = f"toy_{i:03d}"
        ts = [RandCropByPosNegLabeld(keys=["image", "label"], label_key="label", spatial_size=list(patch),
                                     pos=2, neg=1, num_samples=1, allow_smaller=True)]
        if augment:
            ts.append(RandFlipd(keys=["image", "label"], prob=0.5, spatial_axis=0))
        self.train = Dataset(cases[:n_train], transform=Compose(ts))
        self.val = [{"image": c["image"], "label": c["label"], "id": c["id"]} for c in cases[n_train:]]
        self.test: list = []
        self.num_workers = num_workers

    def reseed(self, seed: int) -> None:
        self.train.transform.set_random_state(seed=int(seed) % (2**32))
