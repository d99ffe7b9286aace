"""The search loop behind `medseg-nas search` (its command line: stages/search.py).

    strategy.ask → (dedupe against the store) → store row `running` → executor → TrialResult
    → objectives (f1, f2) → store row `done`/`failed` → strategy.tell → strategy_state.json

The runner holds no algorithm logic: which genome comes next is the strategy's business, where
a trial runs is the executor's, what a trial does is trial.py's. It owns the order of events:

- Every trial is written as `running` before it starts and as `done`/`failed` when it ends
  (`TrialStore`, sqlite in WAL mode, one commit per write; the verdict is outcome.py's).
- Every ask and tell goes into the store's ask log and, after every tell, the strategy's own
  state into strategy_state.json (strategy_state.py); front.json and the plots follow every
  trial (front.py).
- A genome whose key is already finished in the store is told from the store (never trained
  twice); one asked while an identical genome is in flight waits for that trial.
- `resume=True` checks the config (resume.py), reloads the strategy state, resubmits the
  pending genomes and carries on. A genome asked again after a kill whose `running` row exists
  re-runs under the same trial id. With a deterministic strategy and trainer (CPU), a search
  killed at any moment and resumed ends with the same front as an uninterrupted one.

With `search.fidelity.kind: halving` a new trial trains to the first rung only and promoted
trials go on from their saved state whenever a slot is free, before any new genome (nas/halving.py
for the rule, nas/rungs.py for the bookkeeping); promotions do not count against the trial budget
and stop with the wall-clock budget.

Stops: the trial budget (`search.budget_trials`, counting finished trials), the wall-clock
budget (`search.budget_hours`, summed over resumed sessions), the strategy saying it is done,
Ctrl-C (after saving; resume later) or `search.max_consecutive_failures` failures in a row of
the same kind (a `SearchError` naming the error).
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from medseg_nas.config import Config, config_from_dict, config_to_dict
from medseg_nas.errors import SearchError
from medseg_nas.nas.executors import Completed, Executor, TrialSpec, make_executor
from medseg_nas.nas.front import Front, FrontArtefacts
from medseg_nas.nas.halving import Halving
from medseg_nas.nas.rungs import RungKeeper
from medseg_nas.jsonio import atomic_write
from medseg_nas.nas.outcome import FailureStreak, all_failed_message, first_line, judge
from medseg_nas.nas.progress import SearchLog
from medseg_nas.nas.resume import check_resume_config
from medseg_nas.nas.run_lock import run_dir_lock
from medseg_nas.trial_store import TrialStore
from medseg_nas.nas.strategy_state import ResumableStrategy
from medseg_nas.nas.problem import SearchProblem
from medseg_nas.nas.trial import train_trial
from medseg_nas.results import FINISHED, TrialStatus
from medseg_nas.search.stop import StopRule
from medseg_nas.space.genome import Genome
from medseg_nas.rundir import RunDir



@dataclass
class SearchSummary:
    """What a search session ends with: run_search returns it, the CLI and the pipeline print it."""

    run_dir: str
    strategy: str
    stop_reason: str  # "budget" | "time" | "strategy done" | "interrupted" | "no new genomes"
    n_trials: int  # finished trials in the store (done + failed)
    n_done: int
    n_failed: int
    n_new: int  # trials finished in this session
    n_new_failed: int  # of them, failed
    n_cached: int  # asks answered from the store without training, this session
    front: list[dict]
    hypervolume: float
    seconds: float  # this session
    trials_per_hour: float  # this session

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class _Search:
    """One search session: asks the strategy, answers from the store or submits trials, records
    what comes back (see run_search)."""

    def __init__(self, cfg, run_dir, resume, strategy, trial_fn, executor, progress):
        self.cfg = cfg
        self.run_dir = run_dir
        self.rundir = run = RunDir(run_dir)
        self.resume = resume
        self.t0 = time.time()
        self.store = TrialStore(run.trials_db)
        self.log = SearchLog(run.search_log, progress)
        self.host = socket.gethostname()

        told = {r.key: float(r.f2) for r in self.store.rows(TrialStatus.DONE) if r.f2 is not None}
        # an injected trial function without data.root needs no data (tests, dry runs)
        self.problem = problem = SearchProblem.build(cfg, run_dir, told, with_data=trial_fn is None or bool(cfg.data.root))

        name = cfg.search.strategy if strategy is None or isinstance(strategy, str) else getattr(
            strategy, "name", type(strategy).__name__
        )
        if strategy is None or isinstance(strategy, str):
            strategy = problem.make_strategy()
        self.strategy = ResumableStrategy(strategy, name, run.strategy_state, self.store, resume, started=self.t0,
                                          warn=self.log)
        self.backlog: list[Genome] = self.strategy.pending()  # to (re)submit before asking again
        self.inflight: dict[str, TrialSpec] = {}
        halving = Halving.of(cfg)  # successive halving: the rungs in the store and in flight
        self.rungs = RungKeeper(halving, cfg, self.store, run_dir, problem.ctx.spec_context, self.log) if halving else None
        self.n_new = self.n_new_failed = self.n_cached = 0
        self.failures = FailureStreak()
        self.stop_reason = ""
        self.stop = StopRule.of(cfg.search)
        self.executor: Executor | None = executor
        self.trial_fn = trial_fn or train_trial
        self.artefacts = FrontArtefacts(run_dir, cfg, problem.box, name, warn=self.log)
        if not self.strategy.resumed:
            self.strategy.save()

    # -- budget ----------------------------------------------------------------------------------
    def finished(self) -> int:
        return self.store.count(FINISHED)

    def remaining(self) -> float:
        return self.stop.remaining(self.finished(), len(self.inflight))

    def time_up(self) -> bool:
        return self.stop.time_up(self.strategy.elapsed())

    # -- asking ----------------------------------------------------------------------------------
    def answer_or_submit(self, genome: Genome) -> str:
        """Send an asked genome on its way: told from the store ("cached"), joined to the trial
        of its identical twin in flight ("joined"), or submitted as a trial ("submitted")."""
        key = genome.key()
        row = self.store.finished_by_key(key)
        if row is not None:
            self.n_cached += 1
            self.strategy.tell(genome, self.rungs.told_objectives(row) if self.rungs else row.objectives)
            return "cached"
        if key in self.inflight:
            return "joined"  # told when the identical genome's trial ends
        running = self.store.running_by_key(key)
        seed = int(self.cfg.train.seed)
        tid = self.store.start(key, genome.to_json(), seed, self.host, trial_id=running.id if running else None)
        log_dir = self.rundir.trial_log(tid)
        if running is not None and log_dir.exists():
            shutil.rmtree(log_dir, ignore_errors=True)
        spec = self.problem.spec(tid, genome, seed, str(log_dir))
        if self.rungs:
            self.rungs.first_rung(spec)
        self.inflight[key] = spec
        self.executor.submit(spec)
        return "submitted"

    def promote(self) -> bool:
        """Submit the next promotion if there is one (never once the time budget is spent)."""
        spec = self.rungs.next_spec() if self.rungs and not self.time_up() else None
        if spec is not None:
            self.executor.submit(spec)
        return spec is not None

    def submit_trials(self) -> None:
        """Submit trials until the executor is full, the budget is spent or the strategy waits."""
        idle_asks = 0
        while self.executor.in_flight < self.executor.capacity:
            if self.promote():
                continue
            if self.remaining() <= 0:
                self.stop_reason = self.stop_reason or "budget"
                return
            if self.time_up():
                self.stop_reason = self.stop_reason or "time"
                return
            if self.backlog:
                self.answer_or_submit(self.backlog.pop(0))
                continue
            if self.strategy.done:
                self.stop_reason = self.stop_reason or "strategy done"
                return
            n = int(min(self.executor.capacity - self.executor.in_flight, self.remaining()))
            asked = self.strategy.ask(n)
            if not asked:
                if not self.inflight:
                    self.stop_reason = self.stop_reason or "strategy done"
                return  # the strategy waits for results
            self.backlog.extend(asked)
            outcomes = []
            while self.backlog and self.executor.in_flight < self.executor.capacity and self.remaining() > 0:
                outcomes.append(self.answer_or_submit(self.backlog.pop(0)))
            if "submitted" in outcomes or self.backlog:
                idle_asks = 0
            elif "joined" in outcomes:
                return  # the strategy re-proposed a genome in training: wait for its result
            else:
                idle_asks += 1  # every asked genome was answered from the store
                if self.stop.stuck(idle_asks):
                    self.stop_reason = "no new genomes"
                    self.log(f"stopping: the strategy asked {idle_asks} times in a row only for genomes already evaluated")
                    return

    # -- results -----------------------------------------------------------------------------------
    def record_result(self, c: Completed) -> None:
        """Store a finished trial, tell it to every ask of its genome, log it; stop on a failure streak."""
        spec, result = c.spec, c.result
        if spec.rung > 0:
            self.rungs.record(c)
            self.show_progress()
            self.write_outputs()
            return
        genome = Genome.from_json(spec.genome)
        key = genome.key()
        self.problem.costs.complete(result, genome)
        status, error, f1, f2 = judge(result, self.cfg.objectives)
        self.store.finish(
            spec.trial_id,
            status,
            f1,
            f2,
            history=result.history or [],
            error=error,
            seconds=result.seconds,
            host=c.host,
            n_params=result.n_params,
            result=result.to_dict(),
            costs={"macs": result.macs, "act_mem_mb": result.act_mem_mb, "latency_ms": result.latency_ms},
        )
        if status == TrialStatus.DONE:
            self.problem.costs.told(genome, f2)
        if self.rungs:
            self.rungs.first_rung_done(spec, status, f1, result, error)
        del self.inflight[key]
        self.n_new += 1
        self.n_new_failed += status != TrialStatus.DONE
        self.strategy.tell_all(key, (f1, f2) if status == TrialStatus.DONE else None)

        k = self.finished()
        total = self.cfg.search.budget_trials if self.cfg.search.budget_trials > 0 else "?"
        if status == TrialStatus.DONE:
            self.log(
                f"trial {k}/{total} #{spec.trial_id} done f1={f1:.4f} {self.problem.costs.describe(result)}"
                f" val_dice={result.val_dice:.3f}"
                f" ({result.seconds or 0:.1f} s) {genome.describe()}"
            )
        else:
            self.log(f"trial {k}/{total} #{spec.trial_id} FAILED: {first_line(error, '?')} {genome.describe()}")
        self.failures.record(status, error)
        self.show_progress()
        limit = self.cfg.search.max_consecutive_failures
        if status == TrialStatus.FAILED and limit > 0 and self.failures.count >= limit:
            self.write_outputs(force=True)
            raise SearchError(
                f"stopping the search: {self.failures.count} trials in a row failed with {self.failures.kind!r}"
                f" (last: trial {spec.trial_id}: {first_line(error, '?')}). Details in {self.run_dir / 'trials.sqlite'}"
                f" and {self.log.path}. Fix the cause, then continue with --resume."
            )
        self.write_outputs()

    # -- output ----------------------------------------------------------------------------------
    def show_progress(self) -> None:
        if self.log.bar is None:
            return
        front = Front.of(self.store.rows(TrialStatus.DONE), self.problem.box)
        hours = self.cfg.search.budget_hours
        left = max(0.0, hours * 3600 - self.strategy.elapsed()) / 3600 if hours > 0 else None
        self.log.show(self.finished(), len(front.indices), front.hypervolume, self.strategy.surrogate_tau(), left)

    def write_outputs(self, force: bool = False) -> tuple[list[dict], float]:
        return self.artefacts.write(self.store, self.strategy.stats(), force)

    def fail_abandoned(self) -> None:
        """Running rows of a killed session that the strategy never asked for again are failed."""
        for r in self.store.rows(TrialStatus.RUNNING):
            if r.key not in self.inflight:
                self.store.finish(r.id, TrialStatus.FAILED, error="Abandoned: interrupted and not asked again after resuming")
        if self.rungs:
            self.rungs.abandon({sp.trial_id for sp in self.inflight.values()})

    # -- main loop ---------------------------------------------------------------------------------
    def run(self) -> SearchSummary:
        own_executor = self.executor is None
        if own_executor:
            self.executor = make_executor(self.cfg.executor, self.trial_fn, self.cfg.train.device)
        budget = self.cfg.search.budget_trials
        self.log(
            f"search {self.cfg.name}: strategy {self.strategy.name}, budget "
            + (f"{budget} trials" if budget > 0 else "unlimited trials")
            + (f" / {self.cfg.search.budget_hours} h" if self.cfg.search.budget_hours > 0 else "")
            + f", executor {self.executor.describe()}, run dir {self.run_dir}"
            + (f" (resumed: {self.finished()} finished, {len(self.strategy.pending())} pending)" if self.resume else "")
        )
        if self.log.progress:
            self.log.open_bar(budget if budget > 0 else None, self.finished())
            self.show_progress()
        try:
            while True:
                self.submit_trials()
                if not self.inflight and not (self.rungs and self.rungs.continuing):
                    break
                for c in self.executor.wait():
                    self.record_result(c)
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
            self.log.close_bar()
        if self.stop_reason != "interrupted":
            self.fail_abandoned()
        self.strategy.save_elapsed()
        entries, hv = self.write_outputs(force=True)
        return self.summary(entries, hv)

    def summary(self, entries: list[dict], hv: float) -> SearchSummary:
        seconds = time.time() - self.t0
        n_done, n_failed = self.store.count(TrialStatus.DONE), self.store.count(TrialStatus.FAILED)
        summary = SearchSummary(
            run_dir=str(self.run_dir),
            strategy=self.strategy.name,
            stop_reason=self.stop_reason or "budget",
            n_trials=n_done + n_failed,
            n_done=n_done,
            n_failed=n_failed,
            n_new=self.n_new,
            n_new_failed=self.n_new_failed,
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
    saved_config = RunDir(run_dir).config_yaml
    if resume and not saved_config.exists():
        raise SearchError(f"nothing to resume: {saved_config} does not exist")
    run_dir.mkdir(parents=True, exist_ok=True)
    # one search per run directory: everything below reads or writes the store and the state
    with run_dir_lock(run_dir):
        summary = _run_search_locked(cfg, run_dir, resume, strategy, trial_fn, executor, progress)
    if summary.n_trials and not summary.n_done and summary.stop_reason != "interrupted":
        raise SearchError(all_failed_message(run_dir))
    if summary.n_new and summary.n_new_failed == summary.n_new and summary.stop_reason != "interrupted":
        raise SearchError(all_failed_message(run_dir, session=summary.n_new))
    return summary


def _run_search_locked(cfg: Config, run_dir: Path, resume: bool, strategy, trial_fn, executor, progress) -> SearchSummary:
    run = RunDir(run_dir)
    store_path = run.trials_db
    if resume:
        check_resume_config(run_dir, cfg)
    elif store_path.exists():
        with TrialStore(store_path) as st:
            if len(st):
                raise SearchError(
                    f"{run_dir} already holds a search ({len(st)} trials): pass --resume to continue it,"
                    " or choose another --run-dir"
                )
    atomic_write(run.config_yaml, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    search = _Search(cfg, run_dir, resume, strategy, trial_fn, executor, progress)
    try:
        return search.run()
    finally:
        search.store.close()
