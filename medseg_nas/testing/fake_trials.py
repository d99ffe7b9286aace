"""Trial functions for the runner/executor tests: cheap, deterministic, and torch-free.

They run inside worker processes and Ray workers, which then start in well under a second
(nothing here imports torch). In the package so that every worker process, Ray worker and
subprocess a test starts can import them by name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from pathlib import Path

from medseg_nas.results import TrialResult, TrialStatus

_OP_WEIGHT = {"identity": 0, "conv3d_1": 1, "conv3d_3": 27, "conv3d_5": 125, "conv2d_3": 9, "conv2d_5": 25,
              "conv2d_7": 49, "p3d_3": 12, "p3d_5": 30, "p3d_7": 56}


def fake_n_params(g: dict) -> int:
    """A plausible, monotone stand-in for the parameter count (no network is built)."""
    per_cell = sum(_OP_WEIGHT[o] + 1 for o in g["ops"]) * (2 ** g["n_f"]) ** 2
    return int(per_cell * sum(4**lvl for lvl in range(g["n_c"] + 1)) + 100)


def _noise(genome_json: str) -> float:
    return int(hashlib.sha1(genome_json.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def analytic_trial(spec):
    """Deterministic fake training: bigger networks and moderate learning rates segment better."""
    g = json.loads(spec.genome)
    n = fake_n_params(g)
    lr_term = abs(math.log10(g["lr"]) + 3.0) * 0.05
    val = max(0.0, min(1.0, 1.0 - 3.0 / math.log(n) - lr_term + 0.05 * _noise(spec.genome)))
    train = min(1.0, val + 0.03)
    E = int(spec.config["train"]["epochs"])
    e_max = max(1, E - int(3 * _noise(spec.genome)))
    hist = [{"loss": 1.0 / (e + 1), "train_dice": train * (e + 1) / E, "val_dice": val * (e + 1) / E} for e in range(E)]
    delay = float(os.environ.get("FAKE_TRIAL_SECONDS", "0")) if spec.rung == 0 and not spec.until else 0.0
    if delay:
        time.sleep(delay)
    return TrialResult(
        status=TrialStatus.DONE,
        history=hist,
        train_dice=train,
        val_dice=val,
        e_max=e_max,
        epochs_run=E,
        epochs_budget=E,
        seconds=delay,
        n_params=n,
    )


def failing_trial(spec):
    return TrialResult(status=TrialStatus.FAILED, error=f"RuntimeError: NaN loss at epoch {spec.trial_id}", n_params=1)


def raising_trial(spec):
    raise ValueError(f"shape mismatch in trial {spec.trial_id}")


def flaky_trial(spec):
    """Fails (a different message each time, same kind) for even trial ids."""
    if spec.trial_id % 2 == 0:
        return TrialResult(status=TrialStatus.FAILED, error=f"OutOfMemoryError: CUDA out of memory ({spec.trial_id} GiB)")
    return analytic_trial(spec)


def dies_once_trial(spec):
    """Kills its worker process the first time it runs trial 1 (marker file in run_dir)."""
    marker = Path(spec.run_dir) / f"died_{spec.trial_id}"
    if spec.trial_id == 1 and not marker.exists():
        marker.write_text("x")
        os._exit(3)
    return analytic_trial(spec)


def always_dies_trial(spec):
    os._exit(4)


def gated_trial(spec):
    """An analytic trial that records itself in run_dir/trained.txt ("<trial id> <pid>"), then
    waits for the file named by $FAKE_TRIAL_GATE (the test creates it when it is ready)."""
    with open(Path(spec.run_dir) / "trained.txt", "a") as fh:
        fh.write(f"{spec.trial_id} {os.getpid()}\n")
    gate = os.environ.get("FAKE_TRIAL_GATE")
    deadline = time.time() + 180
    while gate and not os.path.exists(gate) and time.time() < deadline:
        time.sleep(0.05)
    return analytic_trial(spec)


def rung_trial(spec):
    """`analytic_trial` for successive halving: trains epochs (state_in's count, spec.until], keeps
    the count in `spec.state_out` (JSON) and appends what it did to run_dir/calls.jsonl; Dice
    grows with the epochs, so a continued trial is seen to continue. A state file that is
    missing or unreadable restarts the trial from epoch 0 (as train_trial does)."""
    E = int(spec.config["train"]["epochs"])
    until = int(spec.until or E)
    start, note = 0, None
    if spec.state_in:
        try:
            start = int(json.loads(Path(spec.state_in).read_text())["epochs"])
        except (OSError, ValueError, KeyError, TypeError):
            note = f"restarted at rung {spec.rung}: the state of rung {spec.rung - 1} is unusable"
    delay = float(os.environ.get("FAKE_TRIAL_SECONDS", "0")) * (until - start) / E
    with open(Path(spec.run_dir) / "calls.jsonl", "a") as f:
        f.write(json.dumps({"trial": spec.trial_id, "rung": spec.rung, "from": start, "until": until}) + "\n")
    if delay:
        time.sleep(delay)
    full = analytic_trial(dataclasses.replace(spec, config={**spec.config, "train": {**spec.config["train"], "epochs": until}}))
    scale = 0.5 + 0.5 * until / E  # less trained, lower Dice
    for row in full.history:
        row["val_dice"] *= scale
        row["train_dice"] *= scale
    full.val_dice *= scale
    full.train_dice *= scale
    full.error = note
    if spec.state_out:
        Path(spec.state_out).parent.mkdir(parents=True, exist_ok=True)
        Path(spec.state_out).write_text(json.dumps({"epochs": until}))
    return full
