"""A trial's training state between two rungs of successive halving (nas/halving.py).

A promoted trial continues from here instead of restarting: weights, AdamW's moments, the LR
schedule's step (the schedule spans train.epochs whatever rung the trial stopped at), the
GradScaler, the epochs trained so far (their history rows, so f1 still averages the last
epochs) and the best validation Dice with its weights and epoch. The data order of the
continued epochs is drawn from a loader seeded by (seed, epochs done): deterministic, but not the
order an uninterrupted trial would have seen (re-drawing that would cost loading every skipped
patch).

Read with `torch.load(weights_only=True)`: a state file holds tensors and plain values only, so a
run directory's `--resume` still unpickles nothing (README, "What is trusted").

Written atomically (temporary file, then rename) so a kill during the write leaves the previous
state or none; `load_state` turns any unreadable file into `StateUnreadable`, which the trial
treats as "restart at this rung" (warning, never a crash).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


class StateUnreadable(Exception):
    """A state file that is missing, truncated or not a trainer state."""


@dataclass
class TrainState:
    """Everything `Trainer.fit` needs to go on from the end of epoch `len(history)`."""

    network: dict
    optimizer: dict
    scheduler: dict
    scaler: dict
    history: list[dict]
    best: float
    e_max: int
    best_state: dict | None = None
    n_params: int = 0
    meta: dict[str, Any] = field(default_factory=dict)  # genome key, seed, epochs budget: checked on load

    @property
    def epochs_done(self) -> int:
        return len(self.history)


def state_meta(genome, seed: int, epochs: int, iters_per_epoch: int) -> dict[str, Any]:
    """What a state records about its trial (`TrainState.meta`) and `load_state` checks."""
    return {"genome": genome.key() if hasattr(genome, "key") else str(genome), "seed": int(seed),
            "epochs": int(epochs), "iters_per_epoch": int(iters_per_epoch)}


def save_state(state: TrainState, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state.__dict__, tmp)
    os.replace(tmp, path)


def load_state(path: str | Path, expect: dict[str, Any]) -> TrainState:
    """The state in `path`; `expect` (genome key, seed, epochs) must match what it was saved for."""
    path = Path(path)
    if not path.is_file():
        raise StateUnreadable(f"{path} does not exist")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain values only: nothing unpickled
        state = TrainState(**raw)
    except Exception as exc:  # noqa: BLE001 - truncated zip, pickle garbage, wrong keys: all "unreadable"
        raise StateUnreadable(f"{path} is not a readable trainer state ({type(exc).__name__}: {exc})") from None
    wrong = {k: (state.meta.get(k), v) for k, v in expect.items() if state.meta.get(k) != v}
    if wrong:
        raise StateUnreadable(f"{path} was saved for another trial ({', '.join(f'{k}: {a!r} not {b!r}' for k, (a, b) in wrong.items())})")
    return state
