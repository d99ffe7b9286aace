"""What a finished trial counts as: done with its objectives, or failed with a reason; when
failures in a row stop a search, and why a search without a single done trial is an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from medseg_nas.trial_store import TrialStore
from medseg_nas.results import TrialResult, TrialStatus
from medseg_nas.search.objectives import compute_objectives
from medseg_nas.rundir import RunDir


def judge(result: TrialResult, obj_cfg) -> tuple[str, str | None, float | None, float | None]:
    """(status, error, f1, f2) of a returned trial: a done trial without finite objectives failed."""
    if not result.ok:
        return TrialStatus.FAILED, result.error or "trial failed without an error message", None, None
    try:
        f1, f2 = (float(v) for v in compute_objectives(result, obj_cfg))
        if not (math.isfinite(f1) and math.isfinite(f2)):
            raise ValueError(f"non-finite objectives ({f1}, {f2})")
    except Exception as exc:  # noqa: BLE001
        return TrialStatus.FAILED, f"ObjectiveError: {type(exc).__name__}: {exc}", None, None
    return TrialStatus.DONE, result.error, f1, f2


def first_line(error: str | None, default: str) -> str:
    return (error or "").strip().splitlines()[0] if (error or "").strip() else default


def failure_kind(error: str | None) -> str:
    """What makes two failures "the same kind": the exception name, or the message minus numbers."""
    head = first_line(error, "unknown error").split(":", 1)[0].strip()
    return "".join(ch for ch in head if not ch.isdigit())[:80]


@dataclass
class FailureStreak:
    """Failures of the same kind in a row (a done trial ends the streak)."""

    kind: str | None = None
    count: int = 0

    def record(self, status: str, error: str | None) -> None:
        if status == TrialStatus.DONE:
            self.kind, self.count = None, 0
            return
        kind = failure_kind(error)
        self.count = self.count + 1 if kind == self.kind else 1
        self.kind = kind


def all_failed_message(run_dir: Path, session: int = 0) -> str:
    """Why a search is an error when every finished trial failed, or (`session` > 0) when every
    one of the `session` trials this session trained failed: the earlier done trials are kept,
    but the search could not train anything new, and exit 0 would hide that."""
    with TrialStore(RunDir(run_dir).trials_db) as st:
        failed = st.rows(TrialStatus.FAILED)
        n_done = st.count(TrialStatus.DONE)
    last = max(failed, key=lambda r: (r.finished or "", r.id)) if failed else None
    first = ((last.error or "").strip().splitlines() or ["no error message"])[0] if last else "?"
    why = (f"all {session} trial(s) this session trained in {run_dir} failed ({n_done} done trial(s) of earlier "
           "sessions are kept)" if session else
           f"all {len(failed)} trials of the search in {run_dir} failed (none done), so there is nothing to retrain")
    fix = "fix the cause and continue with --resume" if session else "fix the cause and search again into a new --run-dir"
    return (
        f"{why} (last: trial {last.id if last else '?'}: {first}). Details in {run_dir / 'search.log'} and"
        f" {run_dir / 'trials.sqlite'}; {fix}."
    )
