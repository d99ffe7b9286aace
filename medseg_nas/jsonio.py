"""`json_default`: the one `default=` for `json.dumps` of run-directory state and histories.

Trial histories, strategy states and fronts carry numpy scalars and arrays, tensors, genome
dataclasses and tuples/sets; written through this hook they all become plain JSON values the
same way in `trials.sqlite`, `strategy_state.json` and `front.json`.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def json_default(obj: Any) -> Any:
    """Arrays/tensors → lists, numpy/torch scalars → numbers, dataclasses → dicts, sets → lists,
    anything else → its `str`."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)
