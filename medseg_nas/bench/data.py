"""Data for a benchmark outside a run directory: one MSD-layout folder, split and planned as the
runner would, with the options every network benchmark shares."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from medseg_nas.config import DataConfig


def build_data(args):
    from medseg_nas import data as mdata

    root = Path(args.data_root)
    datalist = mdata.load_datalist(root)
    if args.cases and args.cases < len(datalist):
        rng = np.random.default_rng(args.split_seed)
        idx = sorted(rng.choice(len(datalist), size=args.cases, replace=False).tolist())
        datalist = [datalist[i] for i in idx]
    dcfg = DataConfig(root=str(root), val_fraction=args.val_fraction, test_fraction=args.test_fraction,
                      split_seed=args.split_seed, target_spacing=args.spacing, patch_size=args.patch,
                      augment=args.augment)
    t0 = time.perf_counter()
    data = mdata.load_data(root, dcfg, datalist=datalist)
    split, plan, bundle = data.split, data.plan, data.bundle
    info = {"root": str(root), "n_cases": len(datalist), "n_train": len(split.train), "n_val": len(split.val),
            "n_test": len(split.test), "test_ids": list(split.test), "patch_size": list(plan.patch_size),
            "target_spacing": list(plan.target_spacing), "network_plan": plan.network_plan.to_dict(),
            "labels": {str(k): v for k, v in plan.labels.items()}, "augment": args.augment,
            "cache_build_s": round(time.perf_counter() - t0, 2)}
    return plan, bundle, info


def groups_of(data_root: str | Path) -> dict[str, str] | None:
    """{case id: group} of an MSD folder's datalist (ACDC: the patient of each frame), for intervals
    that resample whole groups; None when the folder is not here (a record rebuilt elsewhere) or
    no case shares a group, so callers fall back to resampling cases."""
    from medseg_nas import data as mdata
    from medseg_nas.errors import DataError

    try:
        groups = mdata.case_groups(mdata.load_datalist(data_root))
    except (DataError, OSError):
        return None
    return groups if len(set(groups.values())) < len(groups) else None


def tiny_data(dst: Path) -> Path:
    from data_prep import synthetic

    if not (dst / "dataset.json").is_file():
        synthetic.generate(dst, cases=6, seed=0)
    return dst


def add_data_and_budget_args(ap: argparse.ArgumentParser, seeds_default: str) -> None:
    """The data, split and training-budget options every network benchmark shares (bench_cells too)."""
    ap.add_argument("--dataset", default="mni152", help="name used in the output and the table")
    ap.add_argument("--data-root", default="data/mni152_tissue", help="MSD-layout folder (used in place)")
    ap.add_argument("--cases", type=int, default=0, help="random subset of this many cases (0: all)")
    ap.add_argument("--spacing", type=float, nargs=3, default=None, help="target spacing mm (default: planned)")
    ap.add_argument("--patch", type=int, nargs=3, default=None, help="patch size (default: planned)")
    ap.add_argument("--val-fraction", type=float, default=0.2)
    ap.add_argument("--test-fraction", type=float, default=0.2)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--augment", default="light")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--iters", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--seeds", default=seeds_default, help="comma list of training seeds (each network once per seed)")
    ap.add_argument("--n-f", type=int, default=3, help="first-level filters 2^n_f of the published genomes")
