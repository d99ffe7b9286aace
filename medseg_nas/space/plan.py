"""Where the network may downsample: a per-level stride plan derived from voxel spacing.

Like nnU-Net's planner: at each level an axis is halved only while its (current) spacing is
at most twice the finest spacing and its feature map stays at least `min_size` voxels, so a
thick-slice axis (ACDC's 10 mm vs 1.5 mm in-plane) is not pooled until the in-plane axes have
caught up, and is never pooled to nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_LEVELS = 4  # the deepest network of the space has n_c = 4 downsamplings


@dataclass(frozen=True)
class NetworkPlan:
    """Strides of the n_c downsamplings (a network with n_c levels uses the first n_c)."""

    strides: tuple[tuple[int, int, int], ...] = ((2, 2, 2),) * MAX_LEVELS

    def __post_init__(self) -> None:
        object.__setattr__(self, "strides", tuple(tuple(int(v) for v in s) for s in self.strides))
        if len(self.strides) < MAX_LEVELS or any(len(s) != 3 or min(s) < 1 for s in self.strides):
            raise ValueError(f"a plan needs {MAX_LEVELS} strides of 3 positive ints, got {self.strides}")

    def divisor(self, n_levels: int) -> tuple[int, int, int]:
        """Patch sizes must be multiples of this per axis for a network of `n_levels`."""
        d = [1, 1, 1]
        for s in self.strides[:n_levels]:
            d = [a * b for a, b in zip(d, s)]
        return tuple(d)

    def to_dict(self) -> dict:
        return {"strides": [list(s) for s in self.strides]}

    @classmethod
    def from_dict(cls, d: dict) -> "NetworkPlan":
        return cls(strides=tuple(tuple(s) for s in d["strides"]))


def level_layout(n_c: int, filters: int, plan: NetworkPlan | None) -> tuple[tuple, list[int]]:
    """The downsampling strides of an n_c-level network (the plan's first n_c) and its widths per
    level (filters, doubled at each level down): the macro layout both cells share."""
    plan = plan or NetworkPlan()
    return plan.strides[:n_c], [filters * 2**level for level in range(n_c + 1)]


def plan_from_spacing(spacing, patch_size=None, min_size: int = 4) -> NetworkPlan:
    """Plan strides for MAX_LEVELS levels from the target spacing (mm) and the patch size."""
    spacing = [float(s) for s in spacing]
    size = [int(p) for p in patch_size] if patch_size is not None else [10**6] * 3
    strides = []
    for _ in range(MAX_LEVELS):
        finest = min(spacing)
        stride = []
        for axis in range(3):
            ok = spacing[axis] <= 2 * finest and size[axis] // 2 >= min_size and size[axis] % 2 == 0
            stride.append(2 if ok else 1)
        strides.append(tuple(stride))
        spacing = [s * st for s, st in zip(spacing, stride)]
        size = [s // st for s, st in zip(size, stride)]
    return NetworkPlan(strides=tuple(strides))
