"""The search loop and the `medseg-nas search` stage.

    strategy.ask → (dedupe against the store) → store row `running` → executor → TrialResult
    → objectives (f1, f2) → store row `done`/`failed` → strategy.tell → strategy_state.json

The runner holds no algorithm logic: which genome comes next is the strategy's business, where
a trial runs is the executor's. It owns persistence and resumption:

- Every trial is written as `running` before it starts and as `done`/`failed` when it ends
  (`TrialStore`, sqlite in WAL mode, one commit per write).
- After every tell the strategy's `state_dict()` is written atomically to
  `strategy_state.json`, together with the genomes asked but not yet told ("pending").
- A genome whose key is already finished in the store is told from the store (never trained
  twice); one asked while an identical genome is in flight waits for that trial.
- `resume=True` reloads the strategy state, resubmits the pending genomes and carries on. A
  genome asked again after a kill whose `running` row exists re-runs under the same trial id.
  With a deterministic strategy and trainer (CPU), a search killed at any moment and resumed
  ends with the same front as an uninterrupted one.

Stops: the trial budget (`search.budget_trials`, counting finished trials), the wall-clock
budget (`search.budget_hours`, summed over resumed sessions), the strategy saying it is done,
Ctrl-C (after saving; resume later) or `search.max_consecutive_failures` failures in a row of
the same kind (a `SearchError` naming the error).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import shutil
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from medseg_nas.config import Config, config_from_dict, config_to_dict, load_config, save_config
from medseg_nas.errors import ConfigError, DataError, MedsegError
from medseg_nas.nas.executors import Completed, Executor, TrialSpec, make_executor, result_to_dict
from medseg_nas.nas.run_lock import run_dir_lock
from medseg_nas.search.objectives import compute_objectives
from medseg_nas.space.genome import Genome, SearchSpace
from medseg_nas.space.network import LEGACY_CELL, count_parameters
from medseg_nas.space.plan import NetworkPlan
from medseg_nas.nas.store import TrialRow, TrialStore

STATE_FORMAT = "medseg-nas/strategy-state/1"
# a resumed search must agree with the original on these sections (they decide what a trial
# measures) except for the keys listed after them, which only say how long or where to run
_RESUME_CHECKED = ("data.", "space.", "train.", "objectives.", "search.")
_RESUMABLE_CHANGES = (
    "search.budget_trials",
    "search.budget_hours",
    "search.max_consecutive_failures",
    "train.device",
    "data.num_workers",
    "data.cache_rate",
    "data.prepare.",
)


class SearchError(MedsegError):
    """The search cannot start or had to stop (message says why and what to do)."""


@dataclass
class SearchSummary:
    run_dir: str
    strategy: str
    stop_reason: str  # "budget" | "time" | "strategy done" | "interrupted" | "no new genomes"
    n_trials: int  # finished trials in the store (done + failed)
    n_done: int
    n_failed: int
    n_new: int  # trials finished in this session
    n_cached: int  # asks answered from the store without training, this session
    front: list[dict]
    hypervolume: float
    seconds: float  # this session
    trials_per_hour: float  # this session

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# -- the data side ---------------------------------------------------------------------------


@dataclass
class SearchContext:
    """What the runner knows about the data: enough to count parameters and to build trials."""

    in_channels: int = 1
    n_classes: int = 2
    network_plan: NetworkPlan = field(default_factory=NetworkPlan)
    plan: Any = None  # medseg_nas.data.DataPlan (None: dataless search with an injected trial_fn)
    spec_context: dict = field(default_factory=dict)  # shipped to workers inside every TrialSpec


def prepare_data(cfg: Config, run_dir: Path) -> SearchContext:
    """Datalist → split.json → fingerprint.json → plan.json in the run directory."""
    from medseg_nas import data as mdata

    if not cfg.data.root:
        raise ConfigError("key 'data.root' is empty: set it to an MSD-layout dataset folder")
    root = Path(cfg.data.root)
    if not root.exists():
        prep = cfg.data.prepare
        if not prep.source:
            raise DataError(
                f"data.root {root} does not exist: build it first with `medseg-nas prepare`, or set data.prepare.source"
            )
        from data_prep import prepare_from_config

        print(f"data.root {root} does not exist: preparing it ({prep.source})", file=sys.stderr, flush=True)
        prepare_from_config(prep, root)
    datalist = mdata.load_datalist(root)
    split_path = run_dir / "split.json"
    if split_path.exists():
        split = mdata.Split.load(split_path)
        split.check_cases(datalist, split_path)
    else:
        split = mdata.split_from_config(datalist, cfg.data)
        split.save(split_path)
    fingerprint = mdata.compute_fingerprint(root, datalist, cache_path=run_dir / "fingerprint.json")
    plan = mdata.make_plan(fingerprint, cfg.data)
    _atomic_write(run_dir / "plan.json", json.dumps(plan.to_dict(), indent=2))
    ctx = SearchContext(
        in_channels=int(plan.in_channels),
        n_classes=int(plan.n_classes),
        network_plan=plan.network_plan,
        plan=plan,
        spec_context={"plan": plan.to_dict(), "split": json.loads(split_path.read_text())},
    )
    # the in-process executor reuses this process's datalist/split/plan (and later its bundle)
    _WORKER_CONTEXTS[_context_key(str(run_dir), config_to_dict(cfg))] = _WorkerContext(cfg, datalist, split, plan)
    return ctx


@dataclass
class _WorkerContext:
    cfg: Config
    datalist: list
    split: Any
    plan: Any
    bundle: Any = None


_WORKER_CONTEXTS: dict[tuple, _WorkerContext] = {}


def _context_key(run_dir: str, config: dict) -> tuple:
    return (os.path.abspath(run_dir), json.dumps(config.get("data", {}), sort_keys=True))


def _worker_context(spec: TrialSpec) -> _WorkerContext:
    """The datalist, split, plan and DataBundle of a run, built once per process."""
    from medseg_nas import data as mdata

    key = _context_key(spec.run_dir, spec.config)
    ctx = _WORKER_CONTEXTS.get(key)
    if ctx is None:
        cfg = config_from_dict(spec.config, source=f"{spec.run_dir}/config.yaml")
        datalist = mdata.load_datalist(Path(cfg.data.root))
        run_dir = Path(spec.run_dir)
        if "split" in spec.context:
            split = mdata.Split(**spec.context["split"])
        else:
            split = mdata.Split.load(run_dir / "split.json")
        plan_dict = spec.context.get("plan") or json.loads((run_dir / "plan.json").read_text())
        plan = mdata.DataPlan.from_dict(plan_dict)
        ctx = _WorkerContext(cfg, datalist, split, plan)
        _WORKER_CONTEXTS[key] = ctx
    if ctx.bundle is None:
        ctx.bundle = mdata.build_datasets(ctx.datalist, ctx.split, ctx.plan, ctx.cfg.data)
    return ctx


def train_trial(spec: TrialSpec):
    """The default trial: train `spec.genome` with the run's Trainer on its (cached) data."""
    from medseg_nas.train import Trainer

    ctx = _worker_context(spec)
    if hasattr(ctx.bundle, "reseed"):
        ctx.bundle.reseed(spec.seed)
    trainer = Trainer(
        ctx.cfg.train, ctx.bundle, ctx.plan, device=spec.device or ctx.cfg.train.device, log_dir=spec.log_dir, progress=False,
        cell=ctx.cfg.space.cell,
    )
    return trainer.fit(spec.genome_obj(), seed=spec.seed)


# -- objectives, front, hypervolume ------------------------------------------------------------


def reference_box(cfg: Config, ctx: SearchContext) -> tuple[tuple[float, float], tuple[float, float]]:
    """(ideal, reference) corners of the objective box, fixed by the config and the space.

    f1 lies in [0, (alpha + 1)·C + beta] (Dice in [0, 1], e_max in [0, E]); f2 between the
    log-parameters of the smallest and the largest network of the space. A fixed box keeps the
    hypervolume comparable across trials, sessions and runs.
    """
    o = cfg.objectives
    space = SearchSpace.from_config(cfg.space)
    small = Genome.smallest(space)
    cell = cfg.space.cell
    big_op = max(space.ops, key=lambda op: count_parameters(Genome(ops=(op,) * 4, n_c=2, n_f=3), 1, 2, cell=cell))
    big = Genome(inputs=(0, 1, 2), ops=(big_op,) * 4, n_c=max(space.n_c), n_f=max(space.n_f), lr=small.lr)
    lo2 = math.log(count_parameters(small, ctx.in_channels, ctx.n_classes, ctx.network_plan, cell))
    hi2 = math.log(count_parameters(big, ctx.in_channels, ctx.n_classes, ctx.network_plan, cell))
    lo1 = min(0.0, (o.alpha + 1) * (o.C - 1))
    hi1 = (o.alpha + 1) * o.C + o.beta
    return (lo1, lo2), (hi1, hi2 + 0.05 * max(hi2 - lo2, 1e-9))


def pareto_indices(F: list[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points of F (both minimised); identical points kept once."""
    from medseg_nas.search.archive import pareto_front

    return [int(i) for i in pareto_front(F)] if len(F) else []


def normalised_hypervolume(F: list[tuple[float, float]], box) -> float:
    """Hypervolume (pymoo) of F inside the fixed box, as a fraction of the box (0..1)."""
    from medseg_nas.search.archive import normalised_hypervolume as _nhv

    return _nhv(F, box[0], box[1]) if len(F) else 0.0


def knee_index(F: list[tuple[float, float]], front: list[int]) -> int | None:
    """Index into F of the knee of the front (search.archive.knee_point)."""
    if not front:
        return None
    import numpy as np

    from medseg_nas.search.archive import knee_point

    return front[int(knee_point(np.asarray([F[i] for i in front], dtype=float)))]


# -- small helpers ------------------------------------------------------------------------------


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def failure_kind(error: str | None) -> str:
    """What makes two failures "the same kind": the exception name, or the message minus numbers."""
    first = (error or "unknown error").strip().splitlines()[0] if (error or "").strip() else "unknown error"
    head = first.split(":", 1)[0].strip()
    return "".join(ch for ch in head if not ch.isdigit())[:80]


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _check_resume_config(saved: dict, new: dict, run_dir: Path) -> None:
    a, b = _flatten(saved), _flatten(new)
    diffs = []
    for key in sorted(set(a) | set(b)):
        if not key.startswith(_RESUME_CHECKED):
            continue
        if any(key == r or (r.endswith(".") and key.startswith(r)) for r in _RESUMABLE_CHANGES):
            continue
        if a.get(key) != b.get(key):
            diffs.append(f"{key}: {a.get(key)!r} -> {b.get(key)!r}")
    if diffs:
        raise SearchError(
            f"cannot resume {run_dir}: its config.yaml differs from this config in "
            + "; ".join(diffs[:5])
            + (" ..." if len(diffs) > 5 else "")
            + " (only budgets, executor, device and non-search sections may change; use another --run-dir for a new search)"
        )


def _stats(strategy) -> dict:
    s = getattr(strategy, "stats", None)
    if callable(s):
        try:
            s = s()
        except Exception:
            s = None
    return s if isinstance(s, dict) else {}


def _tau(stats: dict) -> float | None:
    for k in ("surrogate_tau", "tau", "kendall_tau"):
        v = stats.get(k)
        if isinstance(v, (int, float)) and math.isfinite(v):
            return float(v)
    return None


def _published_key(cfg: Config) -> str | None:
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


# -- the search --------------------------------------------------------------------------------


class _Search:
    """State of one search session (see run_search)."""

    def __init__(self, cfg, run_dir, resume, strategy, trial_fn, executor, progress):
        self.cfg = cfg
        self.run_dir = run_dir
        self.resume = resume
        self.progress = progress
        self.t0 = time.time()
        self.store = TrialStore(run_dir / "trials.sqlite")
        self.state_path = run_dir / "strategy_state.json"
        self.log_path = run_dir / "search.log"
        self.host = socket.gethostname()

        if trial_fn is None or cfg.data.root:
            self.ctx = prepare_data(cfg, run_dir)
        else:  # an injected trial function that does not need data (tests, dry runs)
            self.ctx = SearchContext()
        self.space = SearchSpace.from_config(cfg.space)
        self._f2_cache: dict[str, float] = {}
        self.box = reference_box(cfg, self.ctx)

        self.strategy_name = cfg.search.strategy if strategy is None or isinstance(strategy, str) else getattr(
            strategy, "name", type(strategy).__name__
        )
        if strategy is None or isinstance(strategy, str):
            from medseg_nas.search import make_strategy

            strategy = make_strategy(cfg.search.strategy, self.space, cfg.search, self.f2_of, cfg.search.seed,
                                     f1_bounds=(self.box[0][0], self.box[1][0]))
        self.strategy = strategy

        self.elapsed_before = 0.0
        self.n_told = 0
        pending: list[str] = []
        if resume and self.state_path.exists():
            state = json.loads(self.state_path.read_text())
            if state.get("strategy") != self.strategy_name:
                raise SearchError(
                    f"cannot resume {run_dir} with strategy {self.strategy_name!r}: it was searched with {state.get('strategy')!r}"
                )
            try:  # plain JSON only; a malformed or foreign state is refused, never half-loaded
                self.strategy.load_state_dict(state["state"])
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                why = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
                raise SearchError(f"cannot resume from {self.state_path}: bad strategy state ({why})") from None
            pending = state.get("pending", [])
            self.n_told = int(state.get("n_told", 0))
            self.elapsed_before = float(state.get("elapsed_s", 0.0))
        self.outstanding: list[Genome] = [Genome.from_json(s) for s in pending]
        self.backlog: list[Genome] = list(self.outstanding)  # to (re)submit before asking again
        self.inflight: dict[str, TrialSpec] = {}
        self.n_new = 0
        self.n_cached = 0
        self.fail_kind: str | None = None
        self.fail_count = 0
        self.last_plot = 0.0
        self.stop_reason = ""
        self.executor: Executor | None = executor
        self.trial_fn = trial_fn or train_trial
        self.bar = None
        if not (resume and self.state_path.exists()):
            self.save_state()

    # -- parameters / f2 --------------------------------------------------------------------
    def n_params(self, genome: Genome) -> int:
        return count_parameters(genome, self.ctx.in_channels, self.ctx.n_classes, self.ctx.network_plan, self.cfg.space.cell)

    def f2_of(self, genome: Genome) -> float:
        key = genome.key()
        if key not in self._f2_cache:
            self._f2_cache[key] = math.log(self.n_params(genome))
        return self._f2_cache[key]

    # -- persistence ---------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.elapsed_before + (time.time() - self.t0)

    def save_state(self) -> None:
        state = {
            "format": STATE_FORMAT,
            "strategy": self.strategy_name,
            "state": self.strategy.state_dict(),
            "pending": [g.to_json() for g in self.outstanding],
            "n_told": self.n_told,
            "elapsed_s": round(self.elapsed(), 3),
        }
        _atomic_write(self.state_path, json.dumps(state, default=_json_default))

    def save_elapsed(self) -> None:
        """Record the time spent without saving a strategy caught between an ask and its tell.

        The saved state is always one taken right after a tell: asks made after it are repeated
        (deterministically) on resume, so no strategy has to serialise a half-finished ask.
        """
        if not self.outstanding or not self.state_path.exists():
            self.save_state()
            return
        state = json.loads(self.state_path.read_text())
        state["elapsed_s"] = round(self.elapsed(), 3)
        _atomic_write(self.state_path, json.dumps(state, default=_json_default))

    def log(self, msg: str) -> None:
        with open(self.log_path, "a") as fh:
            fh.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {msg}\n")
        if self.progress:
            if self.bar is not None:
                self.bar.write(msg)
            else:
                print(msg, flush=True)

    # -- telling -------------------------------------------------------------------------------
    def tell(self, genome: Genome, objectives: tuple[float, float] | None) -> None:
        self.strategy.tell(genome, objectives)
        for i, g in enumerate(self.outstanding):
            if g is genome:
                del self.outstanding[i]
                break
        self.n_told += 1
        self.save_state()

    def handle(self, genome: Genome) -> str:
        """Send an asked genome on its way: told from the store, joined to a trial, or submitted."""
        key = genome.key()
        row = self.store.finished_by_key(key)
        if row is not None:
            self.n_cached += 1
            self.tell(genome, row.objectives)
            return "cached"
        if key in self.inflight:
            return "joined"  # told when the identical genome's trial ends
        running = self.store.running_by_key(key)
        seed = int(self.cfg.train.seed)
        tid = self.store.start(key, genome.to_json(), seed, self.host, trial_id=running.id if running else None)
        log_dir = self.run_dir / "tensorboard" / f"trial_{tid:04d}"
        if running is not None and log_dir.exists():
            shutil.rmtree(log_dir, ignore_errors=True)
        spec = TrialSpec(
            trial_id=tid,
            genome=genome.to_json(),
            seed=seed,
            run_dir=str(self.run_dir),
            config=config_to_dict(self.cfg),
            context=self.ctx.spec_context,
            log_dir=str(log_dir),
        )
        self.inflight[key] = spec
        self.executor.submit(spec)
        return "submitted"

    # -- budget ----------------------------------------------------------------------------------
    def finished(self) -> int:
        return self.store.count(("done", "failed"))

    def remaining(self) -> float:
        b = self.cfg.search.budget_trials
        return math.inf if b <= 0 else b - self.finished() - len(self.inflight)

    def time_up(self) -> bool:
        h = self.cfg.search.budget_hours
        return h > 0 and self.elapsed() >= h * 3600

    def fill(self) -> None:
        """Submit trials until the executor is full, the budget is spent or the strategy waits."""
        idle_asks = 0
        while self.executor.in_flight < self.executor.capacity:
            if self.remaining() <= 0:
                self.stop_reason = self.stop_reason or "budget"
                return
            if self.time_up():
                self.stop_reason = self.stop_reason or "time"
                return
            if self.backlog:
                self.handle(self.backlog.pop(0))
                continue
            if getattr(self.strategy, "done", False):
                self.stop_reason = self.stop_reason or "strategy done"
                return
            n = int(min(self.executor.capacity - self.executor.in_flight, self.remaining()))
            asked = list(self.strategy.ask(n))
            if not asked:
                if not self.inflight:
                    self.stop_reason = self.stop_reason or "strategy done"
                return  # the strategy waits for results
            self.outstanding.extend(asked)
            self.backlog.extend(asked)
            outcomes = []
            while self.backlog and self.executor.in_flight < self.executor.capacity and self.remaining() > 0:
                outcomes.append(self.handle(self.backlog.pop(0)))
            if "submitted" in outcomes or self.backlog:
                idle_asks = 0
            elif "joined" in outcomes:
                return  # the strategy re-proposed a genome in training: wait for its result
            else:
                idle_asks += 1  # every asked genome was answered from the store
                if idle_asks >= 10000:
                    self.stop_reason = "no new genomes"
                    self.log("stopping: the strategy asked 10000 times in a row only for genomes already evaluated")
                    return

    # -- results -----------------------------------------------------------------------------------
    def complete(self, c: Completed) -> None:
        spec, result = c.spec, c.result
        genome = Genome.from_json(spec.genome)
        key = genome.key()
        status = getattr(result, "status", None) or (result.get("status") if isinstance(result, dict) else "failed")
        error = getattr(result, "error", None)
        f1 = f2 = None
        if status == "done":
            try:
                f1, f2 = (float(v) for v in compute_objectives(result, self.cfg.objectives))
                if not (math.isfinite(f1) and math.isfinite(f2)):
                    raise ValueError(f"non-finite objectives ({f1}, {f2})")
            except Exception as exc:  # noqa: BLE001
                status, error, f1, f2 = "failed", f"ObjectiveError: {type(exc).__name__}: {exc}", None, None
        else:
            status = "failed"
            error = error or "trial failed without an error message"
        n_params = getattr(result, "n_params", None)
        try:
            rdict = result_to_dict(result)
        except Exception:  # noqa: BLE001
            rdict = None
        self.store.finish(
            spec.trial_id,
            status,
            f1,
            f2,
            history=getattr(result, "history", None) or [],
            error=error,
            seconds=getattr(result, "seconds", None),
            host=c.host,
            n_params=n_params if n_params is not None else self.n_params(genome),
            result=rdict,
        )
        del self.inflight[key]
        self.n_new += 1
        objectives = (f1, f2) if status == "done" else None
        for g in [g for g in self.outstanding if g.key() == key]:
            self.tell(g, objectives)

        k = self.finished()
        total = self.cfg.search.budget_trials if self.cfg.search.budget_trials > 0 else "?"
        if status == "done":
            vd = getattr(result, "val_dice", None)
            extra = f" val_dice={vd:.3f}" if isinstance(vd, (int, float)) else ""
            self.log(
                f"trial {k}/{total} #{spec.trial_id} done f1={f1:.4f} params={math.exp(f2):,.0f}{extra}"
                f" ({getattr(result, 'seconds', 0) or 0:.1f} s) {genome.describe()}"
            )
            self.fail_kind, self.fail_count = None, 0
        else:
            first = (error or "").strip().splitlines()[0] if (error or "").strip() else "?"
            self.log(f"trial {k}/{total} #{spec.trial_id} FAILED: {first} {genome.describe()}")
            kind = failure_kind(error)
            self.fail_count = self.fail_count + 1 if kind == self.fail_kind else 1
            self.fail_kind = kind
        self.update_display()
        limit = self.cfg.search.max_consecutive_failures
        if status == "failed" and limit > 0 and self.fail_count >= limit:
            self.write_outputs(force=True)
            raise SearchError(
                f"stopping the search: {self.fail_count} trials in a row failed with {self.fail_kind!r}"
                f" (last: trial {spec.trial_id}: {first}). Details in {self.run_dir / 'trials.sqlite'}"
                f" and {self.log_path}. Fix the cause, then continue with --resume."
            )
        self.write_outputs()

    # -- output ----------------------------------------------------------------------------------
    def front_data(self) -> tuple[list[TrialRow], list[int], float, list[tuple[int, float]]]:
        rows = self.store.rows("done")
        F = [(r.f1, r.f2) for r in rows]
        front = pareto_indices(F)
        hv = normalised_hypervolume([F[i] for i in front], self.box)
        return rows, front, hv, []

    def hv_history(self) -> list[tuple[int, float]]:
        rows = [r for r in self.store.rows(("done", "failed"))]
        rows.sort(key=lambda r: (r.finished or "", r.id))
        out, F = [], []
        for k, r in enumerate(rows, 1):
            if r.status == "done":
                F.append((r.f1, r.f2))
            out.append((k, normalised_hypervolume(F, self.box) if F else 0.0))
        return out

    def update_display(self) -> None:
        if self.bar is None:
            return
        rows, front, hv, _ = self.front_data()
        parts = [f"front={len(front)}", f"hv={hv:.4f}"]
        tau = _tau(_stats(self.strategy))
        if tau is not None:
            parts.append(f"tau={tau:.2f}")
        if self.cfg.search.budget_hours > 0:
            parts.append(f"left={max(0.0, self.cfg.search.budget_hours * 3600 - self.elapsed()) / 3600:.2f}h")
        self.bar.n = self.finished()
        self.bar.set_postfix_str(" ".join(parts), refresh=False)
        self.bar.refresh()

    def write_outputs(self, force: bool = False) -> tuple[list[dict], float]:
        rows, front, hv, _ = self.front_data()
        F = [(r.f1, r.f2) for r in rows]
        knee = knee_index(F, front)
        entries = []
        for i in sorted(front, key=lambda i: (rows[i].f2, rows[i].f1)):
            r = rows[i]
            res = r.result or {}
            entries.append(
                {
                    "id": r.id,
                    "key": r.key,
                    "genome": r.genome,
                    "f1": r.f1,
                    "f2": r.f2,
                    "n_params": r.n_params,
                    "val_dice": res.get("val_dice"),
                    "train_dice": res.get("train_dice"),
                    "e_max": res.get("e_max"),
                    "seconds": r.seconds,
                }
            )
        pub = _published_key(self.cfg)
        from medseg_nas.space.published import PUBLISHED_DICE, PUBLISHED_PARAMS

        doc = {
            "name": self.cfg.name,
            "strategy": self.strategy_name,
            "n_trials": self.finished(),
            "n_done": len(rows),
            "hypervolume": hv,
            "hypervolume_box": {"ideal": list(self.box[0]), "reference": list(self.box[1])},
            "knee": rows[knee].id if knee is not None else None,
            "strategy_stats": _stats(self.strategy),
            "front": entries,
            "published": (
                {"dataset": pub, "n_params": PUBLISHED_PARAMS[pub], "dice": PUBLISHED_DICE[pub]} if pub else None
            ),
        }
        _atomic_write(self.run_dir / "front.json", json.dumps(doc, indent=2, default=_json_default))
        now = time.time()
        if force or now - self.last_plot >= 15.0:
            self.last_plot = now
            try:
                plot_front(self.run_dir / "front.png", rows, front, knee, self.cfg.name, pub)
                plot_hypervolume(self.run_dir / "hypervolume.png", self.hv_history())
            except Exception as exc:  # noqa: BLE001 - a plot must never stop a search
                self.log(f"warning: could not draw plots: {exc}")
        return entries, hv

    # -- main loop ---------------------------------------------------------------------------------
    def run(self) -> SearchSummary:
        own_executor = self.executor is None
        if own_executor:
            self.executor = make_executor(self.cfg.executor, self.trial_fn, self.cfg.train.device)
        budget = self.cfg.search.budget_trials
        self.log(
            f"search {self.cfg.name}: strategy {self.strategy_name}, budget "
            + (f"{budget} trials" if budget > 0 else "unlimited trials")
            + (f" / {self.cfg.search.budget_hours} h" if self.cfg.search.budget_hours > 0 else "")
            + f", executor {self.executor.describe()}, run dir {self.run_dir}"
            + (f" (resumed: {self.finished()} finished, {len(self.outstanding)} pending)" if self.resume else "")
        )
        if self.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=budget if budget > 0 else None, initial=self.finished(), desc="search", unit="trial", dynamic_ncols=True)
            self.update_display()
        try:
            while True:
                self.fill()
                if not self.inflight:
                    break
                for c in self.executor.wait():
                    self.complete(c)
        except KeyboardInterrupt:
            self.stop_reason = "interrupted"
            self.log(
                f"interrupted: {self.finished()} finished trials are saved in {self.run_dir};"
                " continue with `medseg-nas search CONFIG --run-dir "
                f"{self.run_dir} --resume`"
            )
        finally:
            if own_executor and self.executor is not None:
                self.executor.shutdown()
            if self.bar is not None:
                self.bar.close()
                self.bar = None
        if self.stop_reason != "interrupted":
            # running rows of a killed session that the strategy never asked for again
            for r in self.store.rows("running"):
                if r.key not in self.inflight:
                    self.store.finish(r.id, "failed", error="Abandoned: interrupted and not asked again after resuming")
        self.save_elapsed()
        entries, hv = self.write_outputs(force=True)
        seconds = time.time() - self.t0
        n_done, n_failed = self.store.count("done"), self.store.count("failed")
        summary = SearchSummary(
            run_dir=str(self.run_dir),
            strategy=self.strategy_name,
            stop_reason=self.stop_reason or "budget",
            n_trials=n_done + n_failed,
            n_done=n_done,
            n_failed=n_failed,
            n_new=self.n_new,
            n_cached=self.n_cached,
            front=entries,
            hypervolume=hv,
            seconds=seconds,
            trials_per_hour=self.n_new / seconds * 3600 if seconds > 0 else 0.0,
        )
        self.log(
            f"search stopped ({summary.stop_reason}): {summary.n_trials} trials ({n_failed} failed),"
            f" front of {len(entries)}, hypervolume {hv:.4f}, {summary.trials_per_hour:.1f} trials/h this session"
        )
        return summary


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


def run_search(
    cfg: Config,
    run_dir: str | Path | None = None,
    resume: bool = False,
    strategy: str | Any | None = None,
    budget: int | None = None,
    trial_fn: Callable[[TrialSpec], Any] | None = None,
    *,
    executor: Executor | None = None,
    progress: bool = True,
) -> SearchSummary:
    """Run (or resume) a search into `run_dir` (default `cfg.run_root/cfg.name`).

    `strategy`: a strategy name overriding `cfg.search.strategy`, or a Strategy object.
    `budget`: overrides `cfg.search.budget_trials`. `trial_fn(spec) -> TrialResult` replaces the
    default trial (DataBundle + Trainer); it must be a module-level function for process/Ray
    executors. `executor`: an Executor to use instead of the one `cfg.executor` describes.
    """
    cfg = copy.deepcopy(cfg)
    if isinstance(strategy, str):
        cfg.search.strategy = strategy
    if budget is not None:
        cfg.search.budget_trials = int(budget)
    cfg = config_from_dict(config_to_dict(cfg), source="the search config")  # re-validate overrides
    run_dir = Path(run_dir) if run_dir is not None else Path(cfg.run_root) / cfg.name
    if resume and not (run_dir / "config.yaml").exists():
        raise SearchError(f"nothing to resume: {run_dir / 'config.yaml'} does not exist")
    run_dir.mkdir(parents=True, exist_ok=True)
    # one search per run directory: everything below reads or writes the store and the state
    with run_dir_lock(run_dir):
        summary = _run_search_locked(cfg, run_dir, resume, strategy, trial_fn, executor, progress)
    if summary.n_trials and not summary.n_done and summary.stop_reason != "interrupted":
        raise SearchError(all_failed_message(run_dir))
    return summary


def all_failed_message(run_dir: Path) -> str:
    """Why a search whose every finished trial failed is an error, with the last trial's error."""
    with TrialStore(run_dir / "trials.sqlite") as st:
        failed = st.rows("failed")
    last = max(failed, key=lambda r: (r.finished or "", r.id)) if failed else None
    first = ((last.error or "").strip().splitlines() or ["no error message"])[0] if last else "?"
    return (
        f"all {len(failed)} trials of the search in {run_dir} failed (none done), so there is nothing to retrain"
        f" (last: trial {last.id if last else '?'}: {first}). Details in {run_dir / 'search.log'} and"
        f" {run_dir / 'trials.sqlite'}; fix the cause and search again into a new --run-dir."
    )


def _run_search_locked(cfg: Config, run_dir: Path, resume: bool, strategy, trial_fn, executor, progress) -> SearchSummary:
    store_path = run_dir / "trials.sqlite"
    if resume:
        import yaml

        saved = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
        if isinstance(saved.get("space"), dict):  # saved before space.cell existed: it searched residual
            saved["space"].setdefault("cell", LEGACY_CELL)
        _check_resume_config(saved, config_to_dict(cfg), run_dir)
    elif store_path.exists():
        with TrialStore(store_path) as st:
            if len(st):
                raise SearchError(
                    f"{run_dir} already holds a search ({len(st)} trials): pass --resume to continue it,"
                    " or choose another --run-dir"
                )
    _atomic_write(run_dir / "config.yaml", __import__("yaml").safe_dump(config_to_dict(cfg), sort_keys=False))
    search = _Search(cfg, run_dir, resume, strategy, trial_fn, executor, progress)
    try:
        return search.run()
    finally:
        search.store.close()


# -- plots ---------------------------------------------------------------------------------------


def _new_figure(size=(6.4, 4.4)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=110)
    FigureCanvasAgg(fig)
    return fig


def plot_front(path: Path, rows: list[TrialRow], front: list[int], knee: int | None, title: str, published: str | None) -> None:
    """front.png: every done trial (f1 vs parameters), the Pareto front, the knee, published nets."""
    from medseg_nas.space.published import PUBLISHED_PARAMS

    fig = _new_figure()
    ax = fig.add_subplot(111)
    if rows:
        ax.scatter([math.exp(r.f2) for r in rows], [r.f1 for r in rows], s=14, c="0.65", label="trials")
    if front:
        pts = sorted(((math.exp(rows[i].f2), rows[i].f1) for i in front))
        ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", c="tab:red", lw=1.2)
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=26, c="tab:red", label=f"Pareto front ({len(pts)})", zorder=3)
    if knee is not None:
        r = rows[knee]
        ax.scatter([math.exp(r.f2)], [r.f1], s=110, facecolors="none", edgecolors="k", label=f"knee (#{r.id})", zorder=4)
    for key, n in PUBLISHED_PARAMS.items():
        if key == published:  # no f1 is published: mark the parameter count
            ax.axvline(n, ls="--", c="tab:blue", lw=1.0, label=f"EMONAS-Net {key} ({n / 1e6:.1f}M params)")
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters")
    ax.set_ylabel("f1 (expected segmentation error)")
    ax.xaxis.label.set_size(9)
    ax.yaxis.label.set_size(9)
    ax.set_title(f"{title}: Pareto front")
    ax.grid(alpha=0.3)
    if rows or published:
        ax.legend(fontsize=8)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.91)
    fig.savefig(str(path) + ".tmp.png")
    os.replace(str(path) + ".tmp.png", path)


def plot_hypervolume(path: Path, history: list[tuple[int, float]]) -> None:
    fig = _new_figure((6.4, 3.6))
    ax = fig.add_subplot(111)
    if history:
        ax.plot([k for k, _ in history], [h for _, h in history], marker=".", c="tab:green")
    ax.set_xlabel("trials finished")
    ax.set_ylabel("hypervolume (fraction of the box)")
    ax.set_title("hypervolume of the front")
    ax.grid(alpha=0.3)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.91)
    fig.savefig(str(path) + ".tmp.png")
    os.replace(str(path) + ".tmp.png", path)


# -- CLI stage -------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML config of the run")
    parser.add_argument("--run-dir", default=None, help="run directory (default: <run_root>/<name> of the config)")
    parser.add_argument("--strategy", choices=["samea", "dmls", "random", "nsga2"], default=None, help="override search.strategy")
    parser.add_argument("--budget", type=int, default=None, metavar="N", help="override search.budget_trials")
    parser.add_argument("--resume", action="store_true", help="continue the search saved in the run directory")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key, e.g. --set train.epochs=5 (repeatable)"
    )


def main(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.set)
    from medseg_nas.preflight import preflight

    cfg.search.strategy = args.strategy or cfg.search.strategy
    cfg.search.budget_trials = cfg.search.budget_trials if args.budget is None else args.budget
    preflight(cfg, ["search"], args.config)
    summary = run_search(cfg, args.run_dir, resume=args.resume, strategy=args.strategy, budget=args.budget)
    print(
        f"{summary.n_trials} trials, front of {len(summary.front)} networks, hypervolume {summary.hypervolume:.4f};"
        f" see {Path(summary.run_dir) / 'front.json'}"
    )
    if summary.stop_reason == "interrupted":
        return 130
    return 0
