"""The search's front artefacts: front.json after every trial, front.png and hypervolume.png.

The front, its hypervolume and the knee come from `medseg_nas.search.archive` inside the
run's fixed objective box (`search.objectives.reference_box`), so front.json, the plots, the
report and retrain's `--pick knee` all mean the same points.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from medseg_nas.config import Config
from medseg_nas.jsonio import atomic_write, json_default
from medseg_nas.trial_store import TrialRow, TrialStore
from medseg_nas.results import FINISHED, TrialStatus
from medseg_nas.search.archive import knee_point, normalised_hypervolume, pareto_front
from medseg_nas.space.published import PUBLISHED_DICE, PUBLISHED_PARAMS
from medseg_nas.rundir import RunDir

Box = tuple[tuple[float, float], tuple[float, float]]  # (ideal, reference)
PLOT_EVERY_S = 15.0  # plots are slow to draw: at most this often, and once at the end


@dataclass
class Front:
    """The done trials, the indices of their Pareto front (sorted by size) and its hypervolume."""

    rows: list[TrialRow]
    indices: list[int]
    hypervolume: float

    @classmethod
    def of(cls, rows: list[TrialRow], box: Box) -> "Front":
        F = [(r.f1, r.f2) for r in rows]
        indices = [int(i) for i in pareto_front(F)]
        return cls(rows, indices, normalised_hypervolume([F[i] for i in indices], *box))

    def knee(self) -> int | None:
        """Index into `rows` of the knee of the front (None without done trials)."""
        return knee_point([(r.f1, r.f2) for r in self.rows]) if self.rows else None


def hypervolume_history(rows: list[TrialRow], box: Box) -> list[tuple[int, float]]:
    """(k, hypervolume of the done trials among the first k finished) for every finished trial k."""
    finished = sorted([r for r in rows if r.status in FINISHED], key=lambda r: (r.finished or "", r.id))
    F, out = [], []
    for k, r in enumerate(finished, 1):
        if r.objectives:
            F.append(r.objectives)
        out.append((k, normalised_hypervolume(F, *box)))
    return out


def published_key(cfg: Config) -> str | None:
    """Which published EMONAS-Net result this run's dataset corresponds to, if any."""
    text = " ".join([cfg.name, cfg.data.root, cfg.data.prepare.source, cfg.data.prepare.src]).lower()
    for key, words in (
        ("hippocampus", ("hippocampus", "task04")),
        ("prostate", ("prostate", "promise12", "task05")),
        ("cardiac", ("cardiac", "acdc")),
    ):
        if any(w in text for w in words):
            return key
    return None


def front_entries(front: Front) -> list[dict]:
    """front.json's "front": one entry per front trial, smallest network first."""
    entries = []
    for i in sorted(front.indices, key=lambda i: (front.rows[i].f2, front.rows[i].f1)):
        r = front.rows[i]
        res = r.result or {}
        entries.append(
            {
                "id": r.id,
                "key": r.key,
                "genome": r.genome,
                "f1": r.f1,
                "f2": r.f2,
                "n_params": r.n_params,
                "macs": r.macs,
                "act_mem_mb": r.act_mem_mb,
                "latency_ms": r.latency_ms,
                "val_dice": res.get("val_dice"),
                "train_dice": res.get("train_dice"),
                "e_max": res.get("e_max"),
                "seconds": r.seconds,
                # successive halving: the rung (index) reached and the epochs trained by then
                "rung": r.rung,
                "epochs": res.get("epochs_run"),
            }
        )
    return entries


def _fidelity(cfg: Config, store: TrialStore) -> dict | None:
    """Successive halving's rungs and how many trials finished each (None without halving)."""
    from medseg_nas.config import fidelity_rungs

    fid = cfg.search.fidelity
    if fid.kind == "none":
        return None
    rungs = fidelity_rungs(fid, cfg.train.epochs)
    done = [r.rung for r in store.rung_rows(TrialStatus.DONE)]
    return {"kind": fid.kind, "eta": fid.eta, "rungs": rungs, "trials_per_rung": [done.count(i) for i in range(len(rungs))]}


class FrontArtefacts:
    """Writes a run's front.json (every call) and its two plots (throttled, see PLOT_EVERY_S)."""

    def __init__(self, run_dir: Path, cfg: Config, box: Box, strategy_name: str, warn: Callable[[str], None]) -> None:
        self.run, self.cfg, self.box, self.strategy_name, self.warn = RunDir(run_dir), cfg, box, strategy_name, warn
        self.last_plot = 0.0

    def write(self, store: TrialStore, strategy_stats: dict, force: bool = False) -> tuple[list[dict], float]:
        """Rewrite front.json (and the plots when due or `force`d); (front entries, hypervolume)."""
        front = Front.of(store.rows(TrialStatus.DONE), self.box)
        knee = front.knee()
        entries = front_entries(front)
        pub = published_key(self.cfg)
        doc = {
            "name": self.cfg.name,
            "strategy": self.strategy_name,
            "n_trials": store.count(FINISHED),
            "n_done": len(front.rows),
            "hypervolume": front.hypervolume,
            "cost": self.cfg.objectives.cost,  # f2 = log(this cost)
            "fidelity": _fidelity(self.cfg, store),
            "hypervolume_box": {"ideal": list(self.box[0]), "reference": list(self.box[1])},
            "knee": front.rows[knee].id if knee is not None else None,
            "strategy_stats": strategy_stats,
            "front": entries,
            "published": (
                {"dataset": pub, "n_params": PUBLISHED_PARAMS[pub], "dice": PUBLISHED_DICE[pub]} if pub else None
            ),
        }
        atomic_write(self.run.front_json, json.dumps(doc, indent=2, default=json_default))
        now = time.time()
        if force or now - self.last_plot >= PLOT_EVERY_S:
            self.last_plot = now
            try:
                plot_front(self.run.front_png, front, knee, self.cfg.name, pub, self.cfg.objectives.cost)
                plot_hypervolume(self.run.hypervolume_png, hypervolume_history(store.rows(FINISHED), self.box))
            except Exception as exc:  # noqa: BLE001 - a plot must never stop a search
                self.warn(f"warning: could not draw plots: {exc}")
        return entries, front.hypervolume


# -- plots ---------------------------------------------------------------------------------------


def _new_figure(size=(6.4, 4.4)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path, title: str) -> None:
    ax = fig.axes[0]
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.91)
    fig.savefig(str(path) + ".tmp.png")
    os.replace(str(path) + ".tmp.png", path)


COST_AXIS = {"params": "trainable parameters", "macs": "MACs per patch (forward pass)",
             "latency": "CPU ms per median volume (measured)"}


def plot_front(path: Path, front: Front, knee: int | None, title: str, published: str | None, cost: str = "params") -> None:
    """front.png: every done trial (f1 vs the cost f2 is the log of), the Pareto front, the knee,
    and (when the cost is parameters) the published network's size."""
    rows = front.rows
    fig = _new_figure()
    ax = fig.add_subplot(111)
    if rows:
        ax.scatter([math.exp(r.f2) for r in rows], [r.f1 for r in rows], s=14, c="0.65", label="trials")
    if front.indices:
        pts = sorted(((math.exp(rows[i].f2), rows[i].f1) for i in front.indices))
        ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", c="tab:red", lw=1.2)
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=26, c="tab:red", label=f"Pareto front ({len(pts)})", zorder=3)
    if knee is not None:
        r = rows[knee]
        ax.scatter([math.exp(r.f2)], [r.f1], s=110, facecolors="none", edgecolors="k", label=f"knee (#{r.id})", zorder=4)
    for key, n in PUBLISHED_PARAMS.items():
        if key == published and cost == "params":  # no f1 is published: mark the parameter count
            ax.axvline(n, ls="--", c="tab:blue", lw=1.0, label=f"EMONAS-Net {key} ({n / 1e6:.1f}M params)")
    ax.set_xscale("log")
    ax.set_xlabel(COST_AXIS[cost])
    ax.set_ylabel("f1 (expected segmentation error)")
    ax.xaxis.label.set_size(9)
    ax.yaxis.label.set_size(9)
    if rows or published:
        ax.legend(fontsize=8)
    _save(fig, path, f"{title}: Pareto front")


def plot_hypervolume(path: Path, history: list[tuple[int, float]]) -> None:
    """hypervolume.png: the front's hypervolume after every finished trial."""
    fig = _new_figure((6.4, 3.6))
    ax = fig.add_subplot(111)
    if history:
        ax.plot([k for k, _ in history], [h for _, h in history], marker=".", c="tab:green")
    ax.set_xlabel("trials finished")
    ax.set_ylabel("hypervolume (fraction of the box)")
    _save(fig, path, "hypervolume of the front")
