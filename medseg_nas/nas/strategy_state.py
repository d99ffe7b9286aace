"""The strategy as a search session drives it, and strategy_state.json, which lets a killed or
stopped search carry on where it was.

After every tell the strategy's `state_dict()` is written atomically, with the genomes asked
but not yet told ("pending"), the number of tells and the time spent over all sessions. The
saved state is always one taken right after a tell: asks made after it are repeated
(deterministically) on resume, so no strategy has to serialise a half-finished ask.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from medseg_nas.errors import SearchError
from medseg_nas.jsonio import atomic_write, json_default
from medseg_nas.space.genome import Genome

STATE_FORMAT = "medseg-nas/strategy-state/1"


def _read_state(path: Path, warn) -> dict | None:
    """The saved state, or None when the file is not a JSON object (truncated, overwritten).

    The store holds the truth: without a state the strategy starts afresh from its seed and
    every genome it asks again is told from trials.sqlite without training (runner.py), which
    replays a deterministic strategy to where it was. The damaged file is kept beside, renamed.
    """
    try:
        state = json.loads(path.read_text())
        if isinstance(state, dict):
            return state
        why = f"holds a {type(state).__name__}, not an object"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        why = f"is not readable JSON ({exc})"
    kept = path.with_name(f"{path.name}.damaged")
    n = 1
    while kept.exists():
        n += 1
        kept = path.with_name(f"{path.name}.damaged-{n}")
    path.replace(kept)
    warn(f"warning: {path} {why}; kept it as {kept.name} and rebuilding the strategy's state from "
         f"{path.parent / 'trials.sqlite'} (finished genomes are told from the store, not retrained)")
    return None


class ResumableStrategy:
    """Asks and tells a strategy, keeping strategy_state.json current.

    `resume`: load the state saved at `path` (refused when another strategy wrote it, or when
    it is malformed: plain JSON only, never half-loaded); `pending()` are then the genomes the
    killed session had asked and not told, to submit again before asking anew.
    """

    def __init__(self, strategy, name: str, path: Path, resume: bool, started: float, warn=None) -> None:
        self.strategy, self.name, self.path, self.started = strategy, name, path, started
        self.elapsed_before = 0.0
        self.n_told = 0
        pending: list[str] = []
        state = _read_state(path, warn or (lambda msg: None)) if resume and path.exists() else None
        self.resumed = state is not None
        if self.resumed:
            if state.get("strategy") != name:
                raise SearchError(
                    f"cannot resume {path.parent} with strategy {name!r}: it was searched with {state.get('strategy')!r}"
                )
            try:
                strategy.load_state_dict(state["state"])
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                why = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
                raise SearchError(f"cannot resume from {path}: bad strategy state ({why})") from None
            pending = state.get("pending", [])
            self.n_told = int(state.get("n_told", 0))
            self.elapsed_before = float(state.get("elapsed_s", 0.0))
        self.outstanding: list[Genome] = [Genome.from_json(s) for s in pending]  # asked, not yet told

    def pending(self) -> list[Genome]:
        return list(self.outstanding)

    @property
    def done(self) -> bool:
        return bool(getattr(self.strategy, "done", False))

    def stats(self) -> dict:
        """The strategy's own figures for front.json and the progress bar ({} when it has none)."""
        s = getattr(self.strategy, "stats", None)
        if callable(s):
            try:
                s = s()
            except Exception:
                s = None
        return s if isinstance(s, dict) else {}

    def surrogate_tau(self) -> float | None:
        """The strategy's surrogate rank correlation, if it reports one: pooled over the run's
        predictions where it has that (a per-generation τ over 3-4 children is mostly noise)."""
        stats = self.stats()
        for k in ("surrogate_tau_pooled", "surrogate_tau", "tau", "kendall_tau"):
            v = stats.get(k)
            if isinstance(v, (int, float)) and math.isfinite(v):
                return float(v)
        return None

    def ask(self, n: int) -> list[Genome]:
        asked = list(self.strategy.ask(n))
        self.outstanding.extend(asked)
        return asked

    def tell(self, genome: Genome, objectives: tuple[float, float] | None) -> None:
        self.strategy.tell(genome, objectives)
        for i, g in enumerate(self.outstanding):
            if g is genome:
                del self.outstanding[i]
                break
        self.n_told += 1
        self.save()

    def tell_all(self, key: str, objectives: tuple[float, float] | None) -> None:
        """Tell every outstanding ask of genome `key` (a trial answers all its twins)."""
        for g in [g for g in self.outstanding if g.key() == key]:
            self.tell(g, objectives)

    def elapsed(self) -> float:
        """Seconds spent on this search, summed over its sessions."""
        return self.elapsed_before + (time.time() - self.started)

    def save(self) -> None:
        state = {
            "format": STATE_FORMAT,
            "strategy": self.name,
            "state": self.strategy.state_dict(),
            "pending": [g.to_json() for g in self.outstanding],
            "n_told": self.n_told,
            "elapsed_s": round(self.elapsed(), 3),
        }
        atomic_write(self.path, json.dumps(state, default=json_default))

    def save_elapsed(self) -> None:
        """Record the time spent without saving a strategy caught between an ask and its tell."""
        if not self.outstanding or not self.path.exists():
            self.save()
            return
        state = json.loads(self.path.read_text())
        state["elapsed_s"] = round(self.elapsed(), 3)
        atomic_write(self.path, json.dumps(state, default=json_default))
