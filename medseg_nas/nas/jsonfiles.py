"""Files the search rewrites while it runs (strategy_state.json, front.json, plan.json,
config.yaml): written whole or not at all, so a kill at any moment leaves a readable file.
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
    """`json.dumps(default=...)` for numpy/torch values, dataclasses, sets and tuples."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)
