"""The one data chain: datalist → split → fingerprint → plan → bundle.

The search, the retrain, the benchmarks and the difficulty probe must build their data the same
way, or their numbers stop being comparable; this keeps the chain (and the config fields it
reads) in one place. Given a run directory's files it also persists the chain there, so a
resumed search, the retrain and every worker see the same split and plan.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from medseg_nas.errors import DataError
from medseg_nas.jsonio import atomic_write
from medseg_nas.data.datalist import load_datalist
from medseg_nas.data.datasets import DataBundle, build_datasets
from medseg_nas.data.fingerprint import FINGERPRINT_VERSION, compute_fingerprint, datalist_hash
from medseg_nas.data.plan import DataPlan, make_plan
from medseg_nas.data.split import Split, make_split


@dataclass
class LoadedData:
    datalist: list[dict]
    split: Split
    plan: DataPlan
    bundle: DataBundle | None


@dataclass(frozen=True)
class DataFiles:
    """Where a run directory keeps the chain's results (`RunDir.data_files()`)."""

    split: Path  # made once, then reused: every trial and the retrain see the same cases
    fingerprint: Path  # cache, valid while the datalist's files keep their names and sizes
    plan: Path  # rewritten from the fingerprint and the config on every load


def split_from_config(datalist: list[dict], data_cfg) -> Split:
    """The split the config asks for (seed, fractions, k-fold)."""
    return make_split(datalist, seed=data_cfg.split_seed, val_fraction=data_cfg.val_fraction,
                      test_fraction=data_cfg.test_fraction, n_folds=data_cfg.n_folds, fold=data_cfg.fold)


def saved_split(datalist: list[dict], data_cfg, path: Path) -> Split:
    """The split saved at `path` (DataError when it names cases the dataset lacks: a run directory
    reused after the dataset changed), else the config's, saved there."""
    if path.exists():
        split = Split.load(path)
        split.check_cases(datalist, path)
        return split
    split = split_from_config(datalist, data_cfg)
    split.save(path)
    return split


def check_unchanged(fingerprint_json: Path, datalist: list[dict], root) -> None:
    """DataError when the dataset's files (names, sizes) differ from those a run directory's
    fingerprint.json was made from: a search resumed, or a network retrained or evaluated, on a
    dataset re-prepared or edited since would silently mix two datasets (and rewrite plan.json)."""
    try:
        saved = json.loads(Path(fingerprint_json).read_text())
    except (OSError, json.JSONDecodeError):
        return  # none yet, or unreadable: recomputed as a cache
    if not isinstance(saved, dict) or saved.get("version") != FINGERPRINT_VERSION or not saved.get("datalist_hash"):
        return
    if saved["datalist_hash"] != datalist_hash(datalist):
        raise DataError(
            f"the dataset in {root} changed since {fingerprint_json} was made: its files (names or sizes) differ from "
            f"those the run's trials were trained on ({saved.get('n_cases', '?')} cases then, {len(datalist)} now). "
            "Restore that dataset, or use a new run directory for the new one")


def load_data(root, data_cfg, datalist: list[dict] | None = None, files: DataFiles | None = None,
              build: bool = True) -> LoadedData:
    """Datalist (unless given), split, plan and, if `build`, the bundle; with `files`, the split,
    fingerprint and plan are persisted in (and the split reused from) a run directory."""
    root = Path(root)
    datalist = load_datalist(root) if datalist is None else datalist
    if files:
        check_unchanged(files.fingerprint, datalist, root)
    split = saved_split(datalist, data_cfg, files.split) if files else split_from_config(datalist, data_cfg)
    plan = make_plan(compute_fingerprint(root, datalist, cache_path=files.fingerprint if files else None), data_cfg)
    if files:
        atomic_write(files.plan, json.dumps(plan.to_dict(), indent=2))
    bundle = build_datasets(datalist, split, plan, data_cfg) if build else None
    return LoadedData(datalist, split, plan, bundle)
