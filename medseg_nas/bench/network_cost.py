"""Size and training-step cost of a network, apart from the script that prints and records them
(scripts/bench_space.py): the published genomes' parameter counts beside the paper's, and the
FLOPs and CPU/GPU milliseconds of one training step on a fixed patch."""

from __future__ import annotations

import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from medseg_nas.space import CELLS, PUBLISHED_GENOMES, PUBLISHED_PARAMS, count_parameters

# a hand count of the authors' Keras graph, 32 filters, 7 cells, one input channel
HAND_COUNT = {"prostate": 5.95e6, "hippocampus": 7.06e6, "cardiac": 7.29e6}
# the authors' heads: one sigmoid output per foreground class
FOREGROUND_CLASSES = {"prostate": 1, "hippocampus": 2, "cardiac": 3}


def published_params() -> dict:
    """Parameter counts of the published genomes (as published: 32 filters, 7 cells) per cell."""
    rows = {}
    for name, g in PUBLISHED_GENOMES.items():
        n_cls = FOREGROUND_CLASSES[name]
        row = {"classes": n_cls, "published": PUBLISHED_PARAMS[name], "hand_count": HAND_COUNT[name]}
        for cell in CELLS:
            row[cell] = count_parameters(g, 1, n_cls, cell=cell)
            row[f"{cell}_vs_published"] = round(row[cell] / PUBLISHED_PARAMS[name] - 1, 4)
        rows[name] = row
    return rows


def time_steps(net: torch.nn.Module, device: str, steps: int, patch=(64, 64, 32), batch=2,
               in_channels: int = 1, channels_last: bool = False) -> float:
    """Milliseconds per bare training step (random data, no loader), after one warm-up step;
    `channels_last`: the input in the layout the trainer uses on CPU (Trainer.build)."""
    net = net.to(device).train()
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    x = torch.randn(batch, in_channels, *patch, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    y = torch.randint(0, 3, (batch, *patch), device=device)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        out = net(x)
        loss = loss_fn(out[0] if isinstance(out, (list, tuple)) else out, y)
        loss.backward()
        opt.step()

    step()  # warm-up (allocator, kernels)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps * 1000


def step_gflop(net: torch.nn.Module, patch=(64, 64, 32), batch=2) -> float:
    """Forward + backward FLOPs of one training step (architecture cost, machine-independent)."""
    x = torch.randn(batch, 1, *patch)
    with FlopCounterMode(display=False) as counter:
        net(x).sum().backward()
    net.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 1e9


def speed_against_run(trainer, genome, run_seconds: float, run_steps: int | None, steps: int = 4) -> dict:
    """This machine against the one that ran a whole job, for the network it trained: a bare training
    step of the run's genome here, built as `trainer` builds it, beside the run's retrain seconds per
    step (validation included, so an upper bound on its step). Equal seconds on a slower machine give
    a peer less compute than the pick had; the ratio is a lower bound on how much less."""
    plan = trainer.plan
    here = time_steps(trainer.build(genome), str(trainer.device), steps, tuple(plan.patch_size),
                      int(trainer.cfg.batch_size), int(plan.in_channels), trainer.channels_last) / 1000
    out = {"pick_bare_step_s_here": round(here, 3), "bare_steps_timed": steps}
    if run_steps:
        there = run_seconds / run_steps
        out.update(run_step_s_at_most=round(there, 3), here_slower_by_at_least=round(here / there, 2))
    return out
