"""The two minimised objectives of a trained trial (EMONAS-Net, Baldeon-Calisto & Lai-Yuen 2021).

    f1 = α·(C − MCDice_train) + (C − MCDice_val) + β·(E − e_max)/E
    f2 = log(number of trainable parameters)

MCDice_train / MCDice_val: mean foreground Dice over classes at epoch e_max (the epoch of the
best validation Dice, 1-based), as `Trainer.fit` reports them in `TrialResult.train_dice` /
`val_dice`; E: the trial's epoch budget (`epochs_budget`, not the epochs actually run, so an
early-stopped trial is judged against the same horizon).

Defaults (`ObjectivesConfig`) and why:
- C = 1.0: Dice ≤ 1, so C − Dice is the segmentation error, ≥ 0; f1 = 0 is a perfect net
  that peaks at the last epoch.
- α = 0.25: the validation error is what the search must minimise (generalisation); the
  training error enters at a quarter weight to separate networks that cannot even fit their
  training patches (under-capacity, bad learning rates) from lucky validation scores on a
  handful of volumes.
- β = 0.1: the e_max term is a tie-breaker worth at most 0.1 (a 10-point Dice difference only
  if the peak is at epoch 0): it penalises networks whose validation Dice peaked early in the
  budget (then stagnated or overfitted), as written in the paper's formula.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def _get(result: Any, key: str, default=None):
    if isinstance(result, Mapping):
        return result.get(key, default)
    return getattr(result, key, default)


def compute_objectives(result: Any, obj_cfg) -> tuple[float, float]:
    """(f1, f2) of a finished trial (`TrialResult` or its dict); ValueError if it has none."""
    status = _get(result, "status", "done")
    if status != "done":
        raise ValueError(f"trial status is {status!r}: a failed trial has no objectives ({_get(result, 'error')})")
    E = int(_get(result, "epochs_budget", 0) or 0)
    e_max = int(_get(result, "e_max", 0) or 0)
    n_params = _get(result, "n_params")
    train = _get(result, "train_dice")
    val = _get(result, "val_dice")
    if E < 1:
        raise ValueError(f"epochs_budget must be >= 1, got {E}")
    if not 0 <= e_max <= E:
        raise ValueError(f"e_max={e_max} outside [0, E={E}]")
    if not n_params or int(n_params) < 1:
        raise ValueError(f"n_params must be a positive count, got {n_params!r}")
    for name, v in (("train_dice", train), ("val_dice", val)):
        if v is None or not math.isfinite(float(v)):
            raise ValueError(f"{name} is not a finite number: {v!r}")
    a, b, C = float(obj_cfg.alpha), float(obj_cfg.beta), float(obj_cfg.C)
    f1 = a * (C - float(train)) + (C - float(val)) + b * (E - e_max) / E
    f2 = math.log(int(n_params))
    return float(f1), float(f2)


__all__ = ["compute_objectives"]
