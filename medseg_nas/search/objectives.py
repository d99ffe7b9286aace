"""The two minimised objectives of a trained trial (EMONAS-Net, Baldeon-Calisto & Lai-Yuen 2021).

    f1 = α·(C − MCDice_train) + (C − MCDice_val) + β·(E − e_max)/E
    f2 = log(number of trainable parameters)

MCDice_train / MCDice_val: mean foreground Dice over classes, taken as `objectives.dice_at` says:
- "last5" (default, as the authors): the mean over the last 5 epochs of the history (training
  Dice of the last 5 epochs run; validation Dice of the last 5 epochs that validated). The
  authors' Search/SaMEA_Algorithm.py, model_train_bp(), averages the last 5 epochs' Dice losses:
  a network judged by where its training settled, not by one lucky validation peak;
- "best": the values at e_max (the epoch of the best validation Dice, 1-based), as `Trainer.fit`
  reports them in `TrialResult.train_dice` / `val_dice`.
E: the trial's epoch budget (`epochs_budget`, not the epochs actually run, so an early-stopped
trial is judged against the same horizon); e_max: the epoch of the best validation Dice.

Defaults (`ObjectivesConfig`) and why:
- C = 1.0: Dice ≤ 1, so C − Dice is the segmentation error, ≥ 0; f1 = 0 is a perfect net
  that peaks at the last epoch.
- α = 0.25 and β = 0.25: the authors' main.py. The validation error is what the search must
  minimise; the training error at a quarter weight separates networks that cannot even fit
  their training patches from lucky validation scores; the e_max term (worth at most β)
  penalises networks whose validation Dice peaked early in the budget.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def _get(result: Any, key: str, default=None):
    if isinstance(result, Mapping):
        return result.get(key, default)
    return getattr(result, key, default)


LAST_EPOCHS = 5  # dice_at "last5": the authors' history.history[...][-5:]


def _finite(v) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def last_epochs_dice(history: list, n: int = LAST_EPOCHS) -> tuple[float, float]:
    """(mean train Dice, mean validation Dice) over the last `n` epochs of `history` that have one.

    Validation may run every few epochs (`train.val_every`): the validation mean is over the
    last `n` epochs that validated. ValueError when the history has no such epochs.
    """
    train = [float(r["train_dice"]) for r in history if _finite(r.get("train_dice"))][-n:]
    val = [float(r["val_dice"]) for r in history if _finite(r.get("val_dice"))][-n:]
    if not train or not val:
        raise ValueError(
            "objectives.dice_at=last5 needs a per-epoch history with train_dice and val_dice; this trial has "
            f"{len(train)} epochs with train_dice and {len(val)} with val_dice"
        )
    return sum(train) / len(train), sum(val) / len(val)


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
    dice_at = obj_cfg.dice_at
    if dice_at == "last5":
        train, val = last_epochs_dice(_get(result, "history") or [], LAST_EPOCHS)
    elif dice_at != "best":
        raise ValueError(f"objectives.dice_at must be 'last5' or 'best', got {dice_at!r}")
    a, b, C = float(obj_cfg.alpha), float(obj_cfg.beta), float(obj_cfg.C)
    f1 = a * (C - float(train)) + (C - float(val)) + b * (E - e_max) / E
    f2 = math.log(int(n_params))
    return float(f1), float(f2)


__all__ = ["LAST_EPOCHS", "compute_objectives", "last_epochs_dice"]
