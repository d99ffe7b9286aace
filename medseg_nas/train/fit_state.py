"""The moving parts of one `Trainer.fit`, shared by its named steps (setup, train_step,
train_epoch, validate_epoch, end_epoch, finish) instead of living as locals of one long loop, and
the small helpers those steps share (batch unpacking, TensorBoard scalars)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch


@dataclass
class FitState:
    net: torch.nn.Module
    opt: Any
    sched: Any
    scaler: Any
    loss_fn: Any
    use_amp: bool
    amp_dtype: Any
    memory_format: Any
    n_classes: int
    patch: tuple
    data_seed: int
    clock: Callable[[], float]
    t_start: float  # by `clock`
    seconds: float | None  # the wall-clock budget (None: steps)
    best: float = -float("inf")
    best_state: dict | None = None
    e_max: int = 0
    val_s: float = 0.0  # by `clock`: the last validation's seconds, kept in reserve for the final one
    val_total: float = 0.0
    t_epoch: float = 0.0  # perf_counter at the epoch's start
    data_ready: float = 0.0  # perf_counter when the step's batch reached the device

    def out_of_time(self, reserve: float) -> bool:
        return self.seconds is not None and self.clock() - self.t_start + reserve >= self.seconds

    def mean_step(self, steps: int) -> float:
        """Seconds per training step so far (0 without a wall-clock budget: the clock is not read)."""
        return (self.clock() - self.t_start - self.val_total) / max(steps, 1) if self.seconds else 0.0


class Batches:
    """Training batches without end: the loader is iterated again when it runs out."""

    def __init__(self, loader) -> None:
        self.loader = loader
        self.it = iter(loader)

    def next(self):
        try:
            return next(self.it)
        except StopIteration:
            self.it = iter(self.loader)
            return next(self.it)


def plain(x: Any) -> torch.Tensor:
    """MetaTensor/numpy → plain torch.Tensor (MetaTensor dispatch costs time in the network)."""
    if hasattr(x, "as_tensor"):
        return x.as_tensor()
    return torch.as_tensor(x)


def val_items(dataset) -> Any:
    if hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__"):
        return (dataset[i] for i in range(len(dataset)))
    return iter(dataset)


def write_scalars(writer, row: dict) -> None:
    """One epoch's row as TensorBoard scalars (the curves of a trial or a retrain)."""
    e = row["epoch"]
    writer.add_scalar("loss/train", row["loss"], e)
    writer.add_scalar("dice/train", row["train_dice"], e)
    writer.add_scalar("lr", row["lr"], e)
    if row["val_dice"] is not None:
        writer.add_scalar("dice/val", row["val_dice"], e)
        for c, d in row["val_dice_per_class"].items():
            writer.add_scalar(f"dice/val_class_{c}", d, e)
    writer.flush()
