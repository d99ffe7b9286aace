"""Whether a search may be resumed with this config: the saved config.yaml must agree with it
on everything that decides what a trial measures; budgets and where to run may change.
"""

from __future__ import annotations

from pathlib import Path

from medseg_nas.config import Config, config_to_dict, read_yaml_file
from medseg_nas.errors import ConfigError, SearchError
from medseg_nas.space.network import LEGACY_CELL
from medseg_nas.rundir import RunDir
from medseg_nas.yaml_io import flatten_keys

# a resumed search must agree with the original on these sections (they decide what a trial
# measures) except for the keys listed after them, which only say how long or where to run
_RESUME_CHECKED = ("data.", "space.", "train.", "objectives.", "search.")
_RESUMABLE_CHANGES = (
    "search.budget_trials",
    "search.budget_hours",
    "search.max_consecutive_failures",
    "train.device",
    "data.num_workers",
    "data.cache_rate",
    "data.prepare.",
)


def check_resume_config(run_dir: Path, cfg: Config) -> None:
    """SearchError naming the first differences if `cfg` may not resume the search in `run_dir`."""
    path = RunDir(run_dir).config_yaml
    saved = read_yaml_file(path) or {}
    if not isinstance(saved, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, not a {type(saved).__name__}")
    if isinstance(saved.get("space"), dict):  # saved before space.cell existed: it searched residual
        saved["space"].setdefault("cell", LEGACY_CELL)
    a, b = flatten_keys(saved), flatten_keys(config_to_dict(cfg))
    defaults = flatten_keys(config_to_dict(Config()))
    diffs = []
    for key in sorted(set(a) | set(b)):
        if not key.startswith(_RESUME_CHECKED):
            continue
        if key not in a and b.get(key) == defaults.get(key):
            continue  # a key added after the run started, at its default (which is what the run did)
        if any(key == r or (r.endswith(".") and key.startswith(r)) for r in _RESUMABLE_CHANGES):
            continue
        if a.get(key) != b.get(key):
            diffs.append(f"{key}: {a.get(key)!r} -> {b.get(key)!r}")
    if diffs:
        raise SearchError(
            f"cannot resume {run_dir}: its config.yaml differs from this config in "
            + "; ".join(diffs[:5])
            + (" ..." if len(diffs) > 5 else "")
            + " (only budgets, executor, device and non-search sections may change; use another --run-dir for a new search)"
        )
