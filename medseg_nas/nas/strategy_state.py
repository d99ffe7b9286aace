"""The strategy as a search session drives it, and strategy_state.json, which lets a killed or
stopped search carry on where it was.

What was asked, told and is pending lives in the store (trials.sqlite's ask log, ask_log.py).
After every tell, strategy_state.json is written atomically with only what the store cannot
give: the strategy's `state_dict()` less the fields the log holds (`history`, `pending`), the
point of the log it was taken at (`n_asked`, `n_told`) and the time spent over all sessions. The
saved state is always one taken right after a tell: on resume the log is rewound to that point
and asks made after it are repeated (deterministically), so no strategy has to serialise a
half-finished ask. States written before the ask log existed (format 1: history and pending in
the file) are read and their log is written from them.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from medseg_nas.ask_log import AskLog
from medseg_nas.errors import SearchError
from medseg_nas.jsonio import atomic_write, json_default
from medseg_nas.space.genome import Genome
from medseg_nas.trial_store import TrialStore

STATE_FORMAT = "medseg-nas/strategy-state/2"
FROM_STORE = ("history", "pending")  # state_dict fields the ask log holds: not written to the file


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
    """Asks and tells a strategy, logging both in the store and keeping strategy_state.json current.

    `resume`: load the state saved at `path` (refused when another strategy wrote it, or when
    it is malformed: plain JSON only, never half-loaded) with its history and pending genomes
    from the store; `pending()` are then the genomes the killed session had asked and not told,
    to submit again before asking anew. Without a saved state the log starts empty.
    """

    def __init__(self, strategy, name: str, path: Path, store: TrialStore, resume: bool, started: float,
                 warn=None) -> None:
        self.strategy, self.name, self.path, self.started = strategy, name, path, started
        self.log = AskLog(store)
        self.elapsed_before = 0.0
        state = _read_state(path, warn or (lambda msg: None)) if resume and path.exists() else None
        self.resumed = state is not None
        if self.resumed:
            if state.get("strategy") != name:
                raise SearchError(
                    f"cannot resume {path.parent} with strategy {name!r}: it was searched with {state.get('strategy')!r}"
                )
            saved = self._restore_log(state)
            try:
                strategy.load_state_dict(saved)
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                why = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
                raise SearchError(f"cannot resume from {path}: bad strategy state ({why})") from None
            self.elapsed_before = float(state.get("elapsed_s", 0.0))
        else:
            self.log.clear()
        # asked, not yet told: (ask number in the log, genome)
        self._asks: list[tuple[int, Genome]] = [(seq, Genome.from_json(js)) for seq, js in self.log.pending()]
        if self.resumed and "n_asked" not in state:
            self.save()  # a format-1 state, loaded: rewritten in format 2

    def _restore_log(self, state: dict) -> dict:
        """The strategy's saved state with the fields the log holds filled in from it, the log
        rewound to the point the state was taken at (or written, for a format-1 state)."""
        saved = state.get("state")
        if not isinstance(saved, dict):
            raise SearchError(f"cannot resume from {self.path}: bad strategy state (no 'state' object)")
        if "n_asked" not in state:  # format 1: the file holds the history and the pending asks
            self.log.fill(saved.get("history", []), list(state.get("pending", [])))
            return saved
        try:
            self.log.rewind(int(state["n_asked"]), int(state["n_told"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SearchError(f"cannot resume from {self.path}: bad strategy state ({exc})") from None
        fields = {"history": self.log.history, "pending": lambda: [js for _, js in self.log.pending()]}
        return {**saved, **{k: fields[k]() for k in state.get("from_store", []) if k in fields}}

    def pending(self) -> list[Genome]:
        return [g for _, g in self._asks]

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
        self._asks.extend((self.log.ask(g.to_json()), g) for g in asked)
        return asked

    def tell(self, genome: Genome, objectives: tuple[float, float] | None) -> None:
        self.strategy.tell(genome, objectives)
        i = next((i for i, (_, g) in enumerate(self._asks) if g is genome), None)
        seq = self._asks.pop(i)[0] if i is not None else self.log.ask(genome.to_json())
        self.log.tell(seq, objectives)
        self.save()

    def tell_all(self, key: str, objectives: tuple[float, float] | None) -> None:
        """Tell every outstanding ask of genome `key` (a trial answers all its twins)."""
        for g in [g for _, g in self._asks if g.key() == key]:
            self.tell(g, objectives)

    @property
    def n_told(self) -> int:
        return self.log.n_told()

    def elapsed(self) -> float:
        """Seconds spent on this search, summed over its sessions."""
        return self.elapsed_before + (time.time() - self.started)

    def save(self) -> None:
        full = self.strategy.state_dict()
        state = {
            "format": STATE_FORMAT,
            "strategy": self.name,
            "state": {k: v for k, v in full.items() if k not in FROM_STORE},
            "from_store": [k for k in FROM_STORE if k in full],
            "n_asked": self.log.n_asked(),
            "n_told": self.log.n_told(),
            "elapsed_s": round(self.elapsed(), 3),
        }
        atomic_write(self.path, json.dumps(state, default=json_default))

    def save_elapsed(self) -> None:
        """At the end of a session: record the time spent without saving a strategy caught between
        an ask and its tell, and rewind the log to the saved state (its later asks are repeated
        on resume), so that the store's pending asks are the saved state's."""
        if not self._asks or not self.path.exists():
            self.save()
            return
        state = json.loads(self.path.read_text())
        state["elapsed_s"] = round(self.elapsed(), 3)
        atomic_write(self.path, json.dumps(state, default=json_default))
        self.log.rewind(int(state["n_asked"]), int(state["n_told"]))
