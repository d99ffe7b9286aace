"""The default trial: prepare the run's data once, then train one genome per `TrialSpec`.

    prepare_data (search process): datalist → split.json → fingerprint.json → plan.json
    train_trial (any worker): the cached datalist/split/plan/DataBundle → Trainer.fit → TrialResult

Each worker process builds a run's DataBundle once and reuses it for every trial it trains
(`WORKER_CONTEXTS`); the in-process executor reuses what `prepare_data` already loaded.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medseg_nas.config import Config, config_from_dict, config_to_dict
from medseg_nas.nas.executors import TrialSpec
from medseg_nas.results import TrialResult
from medseg_nas.space.plan import NetworkPlan


@dataclass
class SearchContext:
    """What the runner knows about the data: enough to count parameters and to build trials."""

    in_channels: int = 1
    n_classes: int = 2
    network_plan: NetworkPlan = field(default_factory=NetworkPlan)
    plan: Any = None  # medseg_nas.data.DataPlan (None: dataless search with an injected trial_fn)
    spec_context: dict = field(default_factory=dict)  # shipped to workers inside every TrialSpec


def prepare_data(cfg: Config, run_dir: Path) -> SearchContext:
    """Datalist → split.json → fingerprint.json → plan.json in the run directory (`data.load_data`);
    the dataset is prepared first when `data.root` is missing and `data.prepare` says how."""
    from medseg_nas.data import ensure_dataset, load_data
    from medseg_nas.rundir import RunDir

    run = RunDir(run_dir)
    ensure_dataset(cfg.data, log=lambda msg: print(msg, file=sys.stderr, flush=True), verify_stamp=False)
    saved_plan = run.plan_json.read_text() if run.plan_json.is_file() else None
    data = load_data(cfg.data.root, cfg.data, files=run.data_files(), build=False)
    datalist, split, plan = data.datalist, data.split, data.plan
    split.check_searchable(run.split_json)
    _check_same_plan(run, saved_plan, plan.to_dict(), cfg.data.root)
    ctx = SearchContext(
        in_channels=int(plan.in_channels),
        n_classes=int(plan.n_classes),
        network_plan=plan.network_plan,
        plan=plan,
        spec_context={"plan": plan.to_dict(), "split": json.loads(run.split_json.read_text())},
    )
    # the in-process executor reuses this process's datalist/split/plan (and later its bundle)
    WORKER_CONTEXTS.remember(str(run_dir), cfg, datalist, split, plan)
    return ctx


def _check_same_plan(run, saved_plan: str | None, plan: dict, root: str) -> None:
    """A search resumed after its data plan moved (the files are checked by load_data) would mix
    trials planned two ways: refused, and the run directory's plan.json restored as it was."""
    from medseg_nas.errors import SearchError
    from medseg_nas.jsonio import atomic_write

    try:
        old = json.loads(saved_plan) if saved_plan else None
    except json.JSONDecodeError:
        return  # an unreadable plan.json is simply rewritten
    if old is None or old == plan:
        return
    atomic_write(run.plan_json, saved_plan)
    changed = [k for k in sorted(set(old) | set(plan)) if old.get(k) != plan.get(k)]
    raise SearchError(
        f"the data plan of {root} changed since the search in {run.path} started (in {', '.join(changed)}); its "
        "trials were trained with the old one: restore the dataset, or search the new one in a new --run-dir")


@dataclass
class WorkerContext:
    """One run's data as a worker trains it: loaded once, the DataBundle built on first use."""

    cfg: Config
    datalist: list
    split: Any
    plan: Any
    bundle: Any = None


class WorkerContextCache:
    """This process's `WorkerContext` per (run directory, data config).

    It lives at module level (`WORKER_CONTEXTS`) because the trial function has to be a plain
    module-level function for process and Ray workers, and the cache must outlast a single
    trial in each worker; shipping it inside the spec would pickle whole datasets.
    """

    def __init__(self) -> None:
        self._contexts: dict[tuple, WorkerContext] = {}

    @staticmethod
    def _key(run_dir: str, config: dict) -> tuple:
        return (os.path.abspath(run_dir), json.dumps(config.get("data", {}), sort_keys=True))

    def remember(self, run_dir: str, cfg: Config, datalist: list, split: Any, plan: Any) -> None:
        self._contexts[self._key(run_dir, config_to_dict(cfg))] = WorkerContext(cfg, datalist, split, plan)

    def for_spec(self, spec: TrialSpec) -> WorkerContext:
        """The datalist, split, plan and DataBundle of the spec's run, built once per process."""
        from medseg_nas import data as mdata
        from medseg_nas.rundir import RunDir

        key = self._key(spec.run_dir, spec.config)
        ctx = self._contexts.get(key)
        if ctx is None:
            cfg = config_from_dict(spec.config, source=f"{spec.run_dir}/config.yaml")
            datalist = mdata.load_datalist(Path(cfg.data.root))
            run = RunDir(spec.run_dir)
            if "split" in spec.context:
                split = mdata.Split(**spec.context["split"])
            else:
                split = mdata.Split.load(run.split_json)
            plan_dict = spec.context.get("plan") or json.loads(run.plan_json.read_text())
            plan = mdata.DataPlan.from_dict(plan_dict)
            ctx = WorkerContext(cfg, datalist, split, plan)
            self._contexts[key] = ctx
        if ctx.bundle is None:
            ctx.bundle = mdata.build_datasets(ctx.datalist, ctx.split, ctx.plan, ctx.cfg.data)
        return ctx


WORKER_CONTEXTS = WorkerContextCache()  # one per process, see WorkerContextCache


def train_trial(spec: TrialSpec) -> TrialResult:
    """The default trial: train `spec.genome` with the run's Trainer on its (cached) data."""
    from medseg_nas.train import Trainer

    ctx = WORKER_CONTEXTS.for_spec(spec)
    if hasattr(ctx.bundle, "reseed"):
        ctx.bundle.reseed(spec.seed)
    trainer = Trainer(
        ctx.cfg.train, ctx.bundle, ctx.plan, device=spec.device or ctx.cfg.train.device, log_dir=spec.log_dir, progress=False,
        cell=ctx.cfg.space.cell,
    )
    genome = spec.genome_obj()
    resume, note = continued_state(spec, genome, ctx.cfg.train)
    rung = {} if spec.until is None else {"until": spec.until, "resume": resume, "save_to": spec.state_out}
    result = trainer.fit(genome, seed=spec.seed, **rung)
    if note and result.ok:
        result.error = note
    if result.ok and spec.rung == 0:  # a promoted trial's costs were measured at its first rung
        record_costs(result, genome, ctx)
    return result


def continued_state(spec: TrialSpec, genome, train_cfg):
    """(the saved state a promoted trial goes on from, a note): a missing, corrupt or foreign
    state file restarts the trial from scratch at its rung, with a warning, never a crash."""
    if not spec.state_in:
        return None, None
    from medseg_nas.train.checkpoint import StateUnreadable, load_state, state_meta

    expect = state_meta(genome, spec.seed, train_cfg.epochs, train_cfg.iters_per_epoch)
    try:
        return load_state(spec.state_in, expect), None
    except StateUnreadable as exc:
        note = f"restarted at rung {spec.rung}: the state of rung {spec.rung - 1} is unusable ({exc})"
        print(f"warning: trial {spec.trial_id}: {note}", file=sys.stderr, flush=True)
        return None, note


def record_costs(result: TrialResult, genome, ctx: WorkerContext) -> None:
    """Put the genome's deployment costs into a done trial's result, measured here, in the worker
    (a Ray trial measures latency on its own node). A measurement that fails leaves the costs
    empty with a note in `result.error`; the trial then fails only if f2 needs that cost."""
    from medseg_nas.deployment_cost import genome_cost
    from medseg_nas.space.network import NetworkSpec

    plan, obj = ctx.plan, ctx.cfg.objectives
    try:
        cost = genome_cost(genome, NetworkSpec.of(plan, ctx.cfg.space.cell), plan.patch_size, plan.median_shape or None,
                           obj.latency_runs)
    except Exception as exc:  # noqa: BLE001 - the trained network stays judged on what was measured
        result.error = f"deployment cost not measured: {type(exc).__name__}: {exc}"
        return
    result.set_costs(cost)
