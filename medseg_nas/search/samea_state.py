"""SaMEA's own resumable state (beyond BaseStrategy's): each field of strategy_state.json and how
it is read back from JSON, so a resumed search continues with exactly the state it saved."""

from __future__ import annotations

from typing import Callable


def _lists(v: list) -> list[list]:
    return [list(x) for x in v]


def _floats(v: list) -> list[float]:
    return [float(x) for x in v]


# the strategy's own state (beyond BaseStrategy's) and how each field is read back from JSON
STATE_FIELDS: dict[str, Callable] = {
    "population": lambda v: [None if m is None else list(m) for m in v],
    "generation": int,
    "stage": str,
    "slot": int,
    "queue": _lists,
    "inflight": _lists,
    "deferred": _lists,
    "generated": lambda v: [str(k) for k in v],
    "born": _lists,
    "fallback": lambda v: None if v is None else list(v),
    "queued_in_gen": int,
    "value_probs": lambda v: {k: _floats(p) for k, p in v.items()},
    "subproblem_probs": _floats,
    "success": _floats,
    "n_screened": int,
    "n_deferred": int,
    "n_rejected": int,
    "batch_pairs": _lists,
    "taus": _floats,
    "pooled_pairs": _lists,
}
OPTIONAL_FIELDS = {"pooled_pairs"}  # absent from states saved before it existed: read as []
