"""The two minimised objectives of a trained trial (EMONAS-Net, Baldeon-Calisto & Lai-Yuen 2021).

    f1 = α·(C − MCDice_train) + (C − MCDice_val) + β·(E − e_max)/E
    f2 = log(cost), the cost `objectives.cost` names: the number of trainable parameters
         ("params", the paper's and the default), MACs of one patch's forward pass ("macs") or
         the measured CPU ms per median-shaped volume ("latency"); see deployment_cost.py

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
from typing import Callable

from medseg_nas.results import COST_FIELDS, TrialResult
from medseg_nas.space.genome import Genome, SearchSpace
from medseg_nas.space.network import count_parameters
from medseg_nas.space.plan import NetworkPlan

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


def compute_objectives(result: TrialResult, obj_cfg) -> tuple[float, float]:
    """(f1, f2) of a finished trial; ValueError if it has none."""
    if not result.ok:
        raise ValueError(f"trial status is {result.status!r}: a failed trial has no objectives ({result.error})")
    E = int(result.epochs_budget or 0)
    e_max = int(result.e_max or 0)
    n_params = result.n_params
    train, val = result.train_dice, result.val_dice
    if E < 1:
        raise ValueError(f"epochs_budget must be >= 1, got {E}")
    if not 0 <= e_max <= E:
        raise ValueError(f"e_max={e_max} outside [0, E={E}]")
    if not n_params or int(n_params) < 1:
        raise ValueError(f"n_params must be a positive count, got {n_params!r}")
    kind = getattr(obj_cfg, "cost", "params")
    cost = result.cost(kind)
    if cost is None or not math.isfinite(cost) or cost <= 0:
        raise ValueError(f"objectives.cost={kind} needs the trial's {COST_FIELDS[kind]} (a positive number), got {cost!r}")
    for name, v in (("train_dice", train), ("val_dice", val)):
        if v is None or not math.isfinite(float(v)):
            raise ValueError(f"{name} is not a finite number: {v!r}")
    dice_at = obj_cfg.dice_at
    if dice_at == "last5":
        train, val = last_epochs_dice(result.history or [], LAST_EPOCHS)
    elif dice_at != "best":
        raise ValueError(f"objectives.dice_at must be 'last5' or 'best', got {dice_at!r}")
    a, b, C = float(obj_cfg.alpha), float(obj_cfg.beta), float(obj_cfg.C)
    f1 = a * (C - float(train)) + (C - float(val)) + b * (E - e_max) / E
    f2 = math.log(cost)
    return float(f1), float(f2)


def reference_box(cfg, in_channels: int, n_classes: int, network_plan: NetworkPlan,
                  f2_of: Callable[[Genome], float] | None = None) -> tuple[tuple[float, float], tuple[float, float]]:
    """(ideal, reference) corners of the objective box, fixed by the config (a Config) and the space.

    f1 lies in [0, (alpha + 1)·C + beta] (Dice in [0, 1], e_max in [0, E]); f2 between the f2
    (`f2_of`, default log-parameters) of the smallest and the largest network of the space (the
    largest: most levels and filters with, everywhere, the op of most parameters). A fixed box
    keeps the hypervolume comparable across trials, sessions and runs.
    """
    o = cfg.objectives
    space = SearchSpace.from_config(cfg.space)
    small = Genome.smallest(space)
    cell = cfg.space.cell
    big_op = max(space.ops, key=lambda op: count_parameters(Genome(ops=(op,) * 4, n_c=2, n_f=3), 1, 2, cell=cell))
    big = Genome(inputs=(0, 1, 2), ops=(big_op,) * 4, n_c=max(space.n_c), n_f=max(space.n_f), lr=small.lr)
    if f2_of is None:
        def f2_of(g: Genome) -> float:
            return math.log(count_parameters(g, in_channels, n_classes, network_plan, cell))
    lo2, hi2 = float(f2_of(small)), float(f2_of(big))
    lo1 = min(0.0, (o.alpha + 1) * (o.C - 1))
    hi1 = (o.alpha + 1) * o.C + o.beta
    return (lo1, lo2), (hi1, hi2 + 0.05 * max(hi2 - lo2, 1e-9))


__all__ = ["LAST_EPOCHS", "compute_objectives", "last_epochs_dice", "reference_box"]
