"""The runner's side of successive halving: which trials are at which rung, in the store and in
flight (the promotion rule and the rungs are nas/halving.py's).

The runner hands a new trial's spec to `first_rung` before submitting it and its outcome to
`first_rung_done`; `next_spec` gives the next promotion to submit (a killed session's unfinished
ones first), `record` stores a promoted trial's outcome, `abandon` fails what a stopped session
left running.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from medseg_nas.config import Config, config_to_dict
from medseg_nas.nas.executors import Completed, TrialSpec
from medseg_nas.nas.halving import Halving, Promotion
from medseg_nas.nas.outcome import first_line, judge
from medseg_nas.trial_store import TrialStore
from medseg_nas.results import TrialResult, TrialStatus
from medseg_nas.rundir import RunDir
from medseg_nas.space.genome import Genome


class RungKeeper:
    """One search session's rungs: promoted trials in flight (`continuing`, by trial id)."""

    def __init__(self, halving: Halving, cfg: Config, store: TrialStore, run_dir: Path, spec_context: dict,
                 log: Callable[[str], None]) -> None:
        self.halving, self.cfg, self.store, self.run_dir = halving, cfg, store, Path(run_dir)
        self.rundir = RunDir(run_dir)
        self.spec_context, self.log = spec_context, log
        self.continuing: dict[int, TrialSpec] = {}
        self.unfinished: list[Promotion] = halving.unfinished(store)  # resubmitted first

    def first_rung(self, spec: TrialSpec) -> None:
        """A new trial trains to the first rung and keeps its state for a promotion."""
        self.store.start_rung(spec.trial_id, 0, self.halving.rungs[0])
        spec.until, spec.state_out = self.halving.rungs[0], str(self.rundir.trial_state(spec.trial_id, 0))

    def first_rung_done(self, spec: TrialSpec, status: str, f1: float | None, result: TrialResult, error: str | None) -> None:
        self.store.finish_rung(spec.trial_id, 0, status, f1, result.val_dice if f1 is not None else None,
                               result.seconds, error)
        if status == TrialStatus.DONE:
            self.store.set_rung(spec.trial_id, 0)

    def told_objectives(self, row) -> tuple[float, float] | None:
        """What a strategy is told for a finished trial: its first rung's (f1, f2) (nas/halving.py)."""
        if row.objectives is None:
            return None
        first = self.store.rung_row(row.id, 0)
        return (first.f1, row.f2) if first is not None and first.f1 is not None else row.objectives

    def next_spec(self) -> TrialSpec | None:
        """The spec of the next promotion (recorded as running), or None."""
        busy = set(self.continuing)
        while self.unfinished and self.unfinished[0].trial_id in busy:
            self.unfinished.pop(0)
        p = self.unfinished.pop(0) if self.unfinished else self.halving.next_promotion(self.store, busy)
        if p is None:
            return None
        row = self.store.get(p.trial_id)
        self.store.start_rung(p.trial_id, p.rung, p.epochs)
        spec = TrialSpec(
            trial_id=p.trial_id, genome=Genome.from_dict(row.genome).to_json(), seed=int(row.seed),
            run_dir=str(self.run_dir), config=config_to_dict(self.cfg), context=self.spec_context,
            log_dir=str(self.rundir.trial_log(p.trial_id)), rung=p.rung, until=p.epochs,
            state_in=str(self.rundir.trial_state(p.trial_id, p.rung - 1)),
            state_out=None if p.rung == self.halving.top else str(self.rundir.trial_state(p.trial_id, p.rung)),
        )
        self.continuing[p.trial_id] = spec
        return spec

    def record(self, c: Completed) -> None:
        """Store a promoted trial's new rung: the trial row takes it when done; a failure keeps
        the trial at the rung below (the strategy was told the first rung; nothing to tell)."""
        spec, result = c.spec, c.result
        del self.continuing[spec.trial_id]
        row = self.store.get(spec.trial_id)
        if result.ok:  # the costs do not change with training: the first rung measured them
            result.macs, result.act_mem_mb, result.latency_ms = row.macs, row.act_mem_mb, row.latency_ms
        status, error, f1, _ = judge(result, self.cfg.objectives)
        self.store.finish_rung(spec.trial_id, spec.rung, status, f1, result.val_dice if f1 is not None else None,
                               result.seconds, error)
        what = f"#{spec.trial_id} rung {spec.rung + 1}/{len(self.halving.rungs)} ({spec.until} epochs)"
        if status != TrialStatus.DONE:
            self.log(f"promoted {what} FAILED, stays at its rung below: {first_line(error, '?')}")
            return
        self.store.set_rung(spec.trial_id, spec.rung, f1, result.history, (row.seconds or 0) + (result.seconds or 0),
                            result.to_dict())
        Path(spec.state_in).unlink(missing_ok=True)  # the rung below's state is no longer needed
        self.log(f"promoted {what} done f1={f1:.4f} (was {row.f1:.4f}) val_dice={result.val_dice:.3f}"
                 f" ({result.seconds or 0:.1f} s){' — ' + error if error else ''}")

    def abandon(self, first_rung_in_flight: set[int]) -> None:
        """Running rungs that no trial in flight will finish are failed (the session stopped)."""
        for r in self.store.rung_rows(TrialStatus.RUNNING):
            if r.trial_id not in (self.continuing if r.rung > 0 else first_rung_in_flight):
                self.store.finish_rung(r.trial_id, r.rung, TrialStatus.FAILED, error="Abandoned: the search stopped first")
