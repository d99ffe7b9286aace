"""One call for the chain every trainer caller repeats: datalist → split → fingerprint → plan → bundle.

The runner, the benchmarks and the difficulty probe must build their data the same way, or their
numbers stop being comparable; this keeps the chain (and the config fields it reads) in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medseg_nas.data.datalist import load_datalist
from medseg_nas.data.datasets import DataBundle, build_datasets
from medseg_nas.data.fingerprint import compute_fingerprint
from medseg_nas.data.plan import DataPlan, make_plan
from medseg_nas.data.split import Split, make_split


@dataclass
class LoadedData:
    datalist: list[dict]
    split: Split
    plan: DataPlan
    bundle: DataBundle | None


def split_from_config(datalist: list[dict], data_cfg) -> Split:
    """The split the config asks for (seed, fractions, k-fold)."""
    return make_split(
        datalist,
        seed=data_cfg.split_seed,
        val_fraction=data_cfg.val_fraction,
        test_fraction=data_cfg.test_fraction,
        n_folds=data_cfg.n_folds,
        fold=data_cfg.fold,
    )


def load_data(
    root,
    data_cfg,
    datalist: list[dict] | None = None,
    split: Split | None = None,
    fingerprint_cache: Path | None = None,
    build: bool = True,
) -> LoadedData:
    """Datalist (unless given), split (the config's unless given), plan and, if `build`, the bundle."""
    datalist = load_datalist(root) if datalist is None else datalist
    split = split_from_config(datalist, data_cfg) if split is None else split
    plan = make_plan(compute_fingerprint(root, datalist, cache_path=fingerprint_cache), data_cfg)
    bundle = build_datasets(datalist, split, plan, data_cfg) if build else None
    return LoadedData(datalist, split, plan, bundle)
