"""`TrialResult`: what one training run (a search trial or the final retrain) hands back, and the
trial statuses spelled in trials.sqlite and the JSON files.

Torch-free on purpose: the executors, the store, the objectives and the test trial functions
import it, and worker processes that only run cheap trials must start without loading torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any


class TrialStatus(StrEnum):
    """A trial's state; the values are what trials.sqlite and the JSON files store."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


FINISHED = (TrialStatus.DONE, TrialStatus.FAILED)  # a trial that ended, either way
COSTS = ("params", "macs", "latency")  # objectives.cost: what f2 is the log of (deployment_cost.py)
COST_FIELDS = {"params": "n_params", "macs": "macs", "latency": "latency_ms"}  # where a result keeps each
# the retrain section's caps on the pick (retrain key, cost, unit); here, not in stages/retrain.py,
# because halving's promotion (nas/halving.py) honours them too and nas/ must not import stages/
COST_CAPS = (("max_params", "params", "parameters"), ("max_macs", "macs", "MACs"),
             ("max_latency_ms", "latency", "ms of CPU latency"))


def cost_caps(retrain_cfg) -> dict[str, float]:
    """The retrain section's caps on the pick's costs (the keys of COST_CAPS; 0: no cap)."""
    return {key: float(getattr(retrain_cfg, key, 0) or 0) for key, _, _ in COST_CAPS}


def within_caps(cost, caps: dict[str, float]) -> bool:
    """Whether a trial whose cost `kind` is `cost(kind)` (None: not recorded) is within every cap."""
    for key, kind, _ in COST_CAPS:
        limit = caps.get(key, 0) or 0
        if limit > 0 and ((value := cost(kind)) is None or value > limit):
            return False
    return True


@dataclass
class TrialResult:
    """Outcome of `Trainer.fit`; JSON-able except `state_dict` (left out of `to_dict`).

    history: one dict per epoch run: ``epoch`` (1-based), ``loss`` (mean training loss),
    ``train_dice`` (mean foreground Dice of the epoch's training patches), ``val_dice`` (mean
    foreground Dice over validation volumes, ``None`` on epochs without validation),
    ``val_dice_per_class`` ({"<label id>": dice} or ``None``), ``lr`` (at the epoch's end) and
    ``seconds``. ``e_max`` is the 1-based epoch of the best validation Dice; ``train_dice`` and
    ``val_dice`` are the values at ``e_max`` (0 when the trial failed before validating).
    """

    status: str = TrialStatus.DONE  # DONE | FAILED
    error: str | None = None
    history: list[dict] = field(default_factory=list)
    train_dice: float = 0.0
    val_dice: float = 0.0
    val_dice_per_class: dict[str, float] = field(default_factory=dict)  # at e_max
    e_max: int = 0
    epochs_run: int = 0
    epochs_budget: int = 0
    seconds: float = 0.0
    peak_mem_mb: float = 0.0  # CUDA: peak allocated by this trial; CPU: the process's peak RSS
    n_params: int | None = None
    # deployment costs (medseg_nas.deployment_cost), measured by the trial worker after training:
    # MACs and peak activation memory of one patch's forward pass, median CPU ms per median volume
    macs: int | None = None
    act_mem_mb: float | None = None
    latency_ms: float | None = None
    latency_threads: int | None = None
    cost_seconds: float = 0.0  # what measuring the costs took (not in `seconds`)
    seed: int | None = None
    device: str = ""
    timing: dict[str, float] = field(default_factory=dict)  # train_s, val_s, data_wait_s, step_ms, ...
    state_dict: Any = field(default=None, repr=False)  # best weights (CPU tensors), not in JSON

    @classmethod
    def failed(cls, error: str, seconds: float = 0.0) -> "TrialResult":
        """A trial that ended without a network to judge (an exception, a dead worker)."""
        return cls(status=TrialStatus.FAILED, error=error, seconds=seconds)

    def cost(self, kind: str) -> float | None:
        """The trial's cost `kind` (one of deployment_cost.COSTS), None when not recorded."""
        value = getattr(self, COST_FIELDS[kind])
        return None if value is None else float(value)

    def set_costs(self, cost) -> None:
        """Copy a `deployment_cost.DeploymentCost` into the result."""
        self.macs, self.act_mem_mb = int(cost.macs), float(cost.act_mem_mb)
        self.latency_ms, self.latency_threads = cost.latency_ms, cost.latency_threads
        self.cost_seconds = float(cost.seconds)

    @property
    def ok(self) -> bool:
        return self.status == TrialStatus.DONE

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "state_dict"}
        return json.loads(json.dumps(d, default=_jsonable))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "TrialResult":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names and k != "state_dict"})

    @classmethod
    def from_json(cls, s: str) -> "TrialResult":
        return cls.from_dict(json.loads(s))


def _jsonable(v: Any):
    if hasattr(v, "item"):
        v = v.item()
        return None if isinstance(v, float) and not math.isfinite(v) else v
    if isinstance(v, (set, tuple)):
        return list(v)
    return str(v)
