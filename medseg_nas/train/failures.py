"""What a failed fit says: the reason a trial stops (`TrialFailure`), one line describing any
exception with where it happened (`describe_failure`, `FitPosition.where`), and the process's peak
memory for the result."""

from __future__ import annotations

import traceback
from pathlib import Path

import torch


class TrialFailure(RuntimeError):
    """A trial that cannot go on (the message is the reason recorded in the result)."""


def peak_rss_mb() -> float:
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
    except Exception:  # pragma: no cover - non-Unix
        return 0.0


def describe_failure(exc: BaseException, where: str) -> str:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, TrialFailure):
        return f"{msg} ({where})" if where else msg
    oom = isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()
    head = "CUDA out of memory" if oom else type(exc).__name__
    tb = traceback.extract_tb(exc.__traceback__)
    at = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
    text = f"{head}: {msg}" if msg else head
    return f"{text[:400]} ({where}{at})" if where or at else text[:400]


class FitPosition:
    """Mutable state of one fit, readable after a failure (partial history, position)."""

    def __init__(self) -> None:
        self.epoch = 0
        self.iteration = 0
        self.phase = "setup"
        self.history: list[dict] = []
        self.n_params: int | None = None
        self.timing = {"train_s": 0.0, "val_s": 0.0, "data_wait_s": 0.0, "steps": 0}

    def where(self) -> str:
        if self.phase == "setup":
            return "during setup"
        if self.phase == "val":
            return f"validating after epoch {self.epoch}"
        return f"epoch {self.epoch}, iteration {self.iteration}"
