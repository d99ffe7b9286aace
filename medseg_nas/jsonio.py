"""How run-directory state is written: one `default=` for `json.dumps` and one atomic write.

Trial histories, strategy states and fronts carry numpy scalars and arrays, tensors, genome
dataclasses and tuples/sets; written through `json_default` they all become plain JSON values the
same way in `trials.sqlite`, `strategy_state.json` and `front.json`. The files the search rewrites
while it runs (strategy_state.json, front.json, plan.json, config.yaml) go through `atomic_write`:
whole or not at all, so a kill at any moment leaves a readable file.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any


def atomic_write(path: Path, text: str) -> None:
    """Replace `path` with `text` in one rename (after an fsync)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


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
