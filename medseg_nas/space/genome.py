"""The EMONAS-Net decision-variable vector and the moves a search makes on it.

Decision variables, in ARCHITECTURE.md's order:

    in2 ∈ {0, 1}, in3 ∈ {0, 1, 2}, in4 ∈ {0, 1, 2, 3}   (0 = cell input, k = node k)
    op1..op4 ∈ OPS
    n_c ∈ {2, 3, 4}   (2·n_c + 1 cells: n_c encoder, a bottleneck, n_c decoder)
    n_f ∈ {3, 4, 5}   (2^n_f filters at the first level, doubling per lower level; the published
                       choices; 2, four filters, is this project's extension for CPU clocks:
                       ACDC's step-cost study found every 8-filter genome ~10x dearer per step
                       than a standard network of its size, the cost sitting at full resolution)
    lr ∈ [1e-5, 9e-3] (log scale)

A `SearchSpace` narrows the choices (e.g. CPU budgets drop n_f = 5) without changing the
encoding, so genomes and surrogate vectors stay comparable across configs. Random sampling,
neighbours and mutation draw learning rates from a fixed log grid so the space is finite and
identical genomes can be recognised (and trained once); any lr in range is still a valid genome
(the published ones use 3e-4 / 4e-4).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

OPS: tuple[str, ...] = (
    "conv3d_1",  # 1×1×1 3D
    "conv3d_3",  # 3×3×3 3D
    "conv3d_5",  # 5×5×5 3D
    "conv2d_3",  # 3×3×1 2D
    "conv2d_5",  # 5×5×1 2D
    "conv2d_7",  # 7×7×1 2D
    "p3d_3",  # 3×3×1 then 1×1×3 pseudo-3D
    "p3d_5",
    "p3d_7",
    "identity",
)
N_C_CHOICES = (2, 3, 4)
N_F_CHOICES = (2, 3, 4, 5)  # every value a genome may take
PUBLISHED_N_F = (3, 4, 5)  # the authors' space, the default
LR_MIN, LR_MAX = 1e-5, 9e-3
# (name, number of values) of every decision variable, in order
VARIABLES = ("in2", "in3", "in4", "op1", "op2", "op3", "op4", "n_c", "n_f", "lr")


@dataclass(frozen=True)
class SearchSpace:
    """The allowed values of each decision variable (defaults: the full published space)."""

    n_c: tuple[int, ...] = N_C_CHOICES
    n_f: tuple[int, ...] = PUBLISHED_N_F
    ops: tuple[str, ...] = OPS
    lr_min: float = LR_MIN
    lr_max: float = LR_MAX
    lr_grid_size: int = 10

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_c", tuple(self.n_c))
        object.__setattr__(self, "n_f", tuple(self.n_f))
        object.__setattr__(self, "ops", tuple(self.ops))

    @property
    def lr_grid(self) -> tuple[float, ...]:
        if self.lr_min == self.lr_max:
            return (float(self.lr_min),)
        grid = np.geomspace(self.lr_min, self.lr_max, self.lr_grid_size)
        return tuple(float(f"{v:.3g}") for v in grid)

    def choices(self, var: str) -> tuple:
        """The values variable `var` may take in this space."""
        if var == "in2":
            return (0, 1)
        if var == "in3":
            return (0, 1, 2)
        if var == "in4":
            return (0, 1, 2, 3)
        if var.startswith("op"):
            return self.ops
        if var == "n_c":
            return self.n_c
        if var == "n_f":
            return self.n_f
        if var == "lr":
            return self.lr_grid
        raise KeyError(var)

    @classmethod
    def from_config(cls, space_cfg) -> "SearchSpace":
        return cls(
            n_c=tuple(space_cfg.n_c),
            n_f=tuple(space_cfg.n_f),
            ops=tuple(space_cfg.ops),
            lr_min=space_cfg.lr_min,
            lr_max=space_cfg.lr_max,
            lr_grid_size=space_cfg.lr_grid,
        )


FULL_SPACE = SearchSpace()


@dataclass(frozen=True)
class Genome:
    """One network of the EMONAS-Net space; frozen and hashable so it can key caches."""

    inputs: tuple[int, int, int] = (0, 1, 2)  # inputs of nodes 2, 3, 4
    ops: tuple[str, str, str, str] = ("conv3d_3",) * 4
    n_c: int = 2
    n_f: int = 4
    lr: float = 1e-3
    # not a decision variable: kept out of equality so it never splits identical networks
    _check: bool = field(default=True, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(int(i) for i in self.inputs))
        object.__setattr__(self, "ops", tuple(str(o) for o in self.ops))
        object.__setattr__(self, "lr", float(self.lr))
        if len(self.inputs) != 3 or any(not 0 <= self.inputs[k] <= k + 1 for k in range(3)):
            raise ValueError(f"inputs {self.inputs}: node k may only read the cell input (0) or nodes 1..k-1")
        if len(self.ops) != 4 or any(op not in OPS for op in self.ops):
            raise ValueError(f"ops {self.ops}: need 4 ops from {OPS}")
        if self.n_c not in N_C_CHOICES:
            raise ValueError(f"n_c={self.n_c} not in {N_C_CHOICES}")
        if self.n_f not in N_F_CHOICES:
            raise ValueError(f"n_f={self.n_f} not in {N_F_CHOICES}")
        if not LR_MIN * (1 - 1e-9) <= self.lr <= LR_MAX * (1 + 1e-9):
            raise ValueError(f"lr={self.lr} outside [{LR_MIN}, {LR_MAX}]")

    # -- derived sizes -------------------------------------------------------------------
    @property
    def n_cells(self) -> int:
        return 2 * self.n_c + 1

    @property
    def filters(self) -> int:
        return 2**self.n_f

    # -- decision-variable view ------------------------------------------------------------
    def values(self) -> tuple:
        """The decision variables in VARIABLES order."""
        return (*self.inputs, *self.ops, self.n_c, self.n_f, self.lr)

    @classmethod
    def from_values(cls, values) -> "Genome":
        v = list(values)
        return cls(inputs=tuple(v[0:3]), ops=tuple(v[3:7]), n_c=int(v[7]), n_f=int(v[8]), lr=float(v[9]))

    def with_value(self, var: str, value) -> "Genome":
        v = list(self.values())
        v[VARIABLES.index(var)] = value
        return Genome.from_values(v)

    # -- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("_check")
        d["inputs"] = list(self.inputs)
        d["ops"] = list(self.ops)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "Genome":
        return cls(inputs=tuple(d["inputs"]), ops=tuple(d["ops"]), n_c=int(d["n_c"]), n_f=int(d["n_f"]), lr=float(d["lr"]))

    @classmethod
    def from_json(cls, s: str) -> "Genome":
        return cls.from_dict(json.loads(s))

    def key(self) -> str:
        """A short stable identifier (used to train identical genomes once)."""
        import hashlib

        return hashlib.sha1(self.to_json().encode()).hexdigest()[:12]

    def describe(self) -> str:
        ins = ",".join("x" if i == 0 else f"n{i}" for i in self.inputs)
        return f"[{ins}] {'/'.join(self.ops)} cells={self.n_cells} f={self.filters} lr={self.lr:.2g}"

    # -- search moves ----------------------------------------------------------------------
    @classmethod
    def random(cls, rng: np.random.Generator, space: SearchSpace = FULL_SPACE) -> "Genome":
        vals = []
        for var in VARIABLES:
            ch = space.choices(var)
            vals.append(ch[int(rng.integers(len(ch)))])
        return cls.from_values(vals)

    @classmethod
    def smallest(cls, space: SearchSpace = FULL_SPACE) -> "Genome":
        """The trivial smallest network of `space` (DMLS seeds its archive with it)."""
        order = sorted(space.ops, key=_op_weight)
        grid = space.lr_grid
        return cls(inputs=(0, 0, 0), ops=(order[0],) * 4, n_c=min(space.n_c), n_f=min(space.n_f), lr=grid[len(grid) // 2])

    def neighbours(self, space: SearchSpace = FULL_SPACE) -> list["Genome"]:
        """Every genome of `space` that differs from this one in exactly one decision variable."""
        out = []
        for var, current in zip(VARIABLES, self.values()):
            for value in space.choices(var):
                if var == "lr":
                    if math.isclose(value, current, rel_tol=1e-6):
                        continue
                elif value == current:
                    continue
                out.append(self.with_value(var, value))
        return out

    def mutate(self, rng: np.random.Generator, space: SearchSpace = FULL_SPACE, rate: float | None = None) -> "Genome":
        """Resample each variable with probability `rate` (default 1/10); at least one changes."""
        rate = 1.0 / len(VARIABLES) if rate is None else rate
        vals = list(self.values())
        free = [i for i, var in enumerate(VARIABLES) if len(space.choices(var)) > 1]
        forced = free[int(rng.integers(len(free)))] if free else -1
        for i, var in enumerate(VARIABLES):
            if i == forced or rng.random() < rate:
                options = [c for c in space.choices(var) if not _same(c, vals[i])]
                if options:
                    vals[i] = options[int(rng.integers(len(options)))]
        return Genome.from_values(vals)

    def crossover(self, other: "Genome", rng: np.random.Generator) -> "Genome":
        """Uniform crossover: each decision variable from either parent with probability 1/2."""
        a, b = self.values(), other.values()
        return Genome.from_values([x if rng.random() < 0.5 else y for x, y in zip(a, b)])

    # -- surrogate encoding ------------------------------------------------------------------
    def encode(self) -> np.ndarray:
        """One-hot inputs (2+3+4) and ops (4×10), then n_c, n_f and log10(lr): 52 numbers."""
        parts = []
        for k, i in enumerate(self.inputs):
            one = np.zeros(k + 2)
            one[i] = 1
            parts.append(one)
        for op in self.ops:
            one = np.zeros(len(OPS))
            one[OPS.index(op)] = 1
            parts.append(one)
        parts.append(np.array([self.n_c, self.n_f, math.log10(self.lr)], dtype=float))
        return np.concatenate(parts)


ENCODING_SIZE = 2 + 3 + 4 + 4 * len(OPS) + 3


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-6)
    return a == b


def _op_weight(op: str) -> int:
    """Weights per input/output channel pair: orders ops from cheapest to largest."""
    if op == "identity":
        return 0
    kind, k = op.split("_")
    k = int(k)
    return {"conv3d": k**3, "conv2d": k * k, "p3d": k * k + k}[kind]
