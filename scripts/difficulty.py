"""Is a prepared dataset hard enough that architectures differ? Same budget, different operations.

    python scripts/difficulty.py --config configs/quickstart.yaml --ops conv3d_1,conv3d_3 \
        --seeds 0,1 --out benchmarks/results/mni152_difficulty_cpu.json

Trains, with the project's `Trainer` and the config's search-trial budget (epochs ×
iterations × batch, patch size, spacing, augmentation, validation), one EMONAS genome per
`--ops` entry whose four nodes all use that operation and read each other in a chain
(inputs 1, 2, 3), with everything else equal (n_c, n_f, learning rate, seed, split). Reports
per genome and seed the best mean validation Dice (sliding window over the split's whole
validation volumes), the per-class Dice, the parameter count and the seconds; and the mean
over seeds of each genome. A 1×1×1-only network sees context only through pooling, so on a
dataset where context matters it must score clearly lower than the 3×3×3 one.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path


def _seeds(text: str) -> list[int]:
    if "-" in text and "," not in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",") if s.strip()]


def measure(cfg, root: str | Path, ops: list[str], seeds: list[int], n_c: int = 2, n_f: int = 3, lr: float = 1e-3,
            epochs: int = 0, iters: int = 0, log=print) -> dict:
    """Train one chain genome per op for each seed on the config's budget; returns the figures."""
    import torch

    from medseg_nas import data as mdata
    from medseg_nas.results import TrialStatus
    from medseg_nas.space.genome import Genome
    from medseg_nas.train import Trainer

    t0 = time.perf_counter()
    data = mdata.load_data(root, cfg.data)
    split, plan, bundle = data.split, data.plan, data.bundle
    setup_s = time.perf_counter() - t0
    E = int(epochs or cfg.train.epochs)
    iters = int(iters or cfg.train.iters_per_epoch)
    trainer = Trainer(cfg.train, bundle, plan, device="cpu", progress=False)
    runs: dict[str, list[dict]] = {}
    for op in ops:
        genome = Genome(inputs=(1, 2, 3), ops=(op,) * 4, n_c=n_c, n_f=n_f, lr=lr)
        for seed in seeds:
            r = trainer.fit(genome, seed=seed, epochs=E, iters_per_epoch=iters, patience=0)
            row = {"seed": seed, "status": r.status, "error": r.error, "val_dice": round(r.val_dice, 4),
                   "val_dice_per_class": {k: round(v, 4) for k, v in (r.val_dice_per_class or {}).items()},
                   "train_dice": round(r.train_dice, 4), "e_max": r.e_max, "n_params": r.n_params,
                   "seconds": r.seconds, "step_ms": r.timing.get("step_ms")}
            runs.setdefault(op, []).append(row)
            log(f"{op:10s} seed {seed}: {r.status} val Dice {row['val_dice']} {row['val_dice_per_class']} "
                f"({r.n_params} params, {r.seconds:.0f} s) {r.error or ''}")
    summary = {}
    for op, rows in runs.items():
        ok = [x["val_dice"] for x in rows if x["status"] == TrialStatus.DONE]
        summary[op] = {"mean_val_dice": round(statistics.fmean(ok), 4) if ok else None,
                       "min_val_dice": min(ok) if ok else None, "max_val_dice": max(ok) if ok else None,
                       "n_done": len(ok), "n_params": rows[0]["n_params"]}
    return {
        "benchmark": "difficulty", "device": "cpu", "threads": torch.get_num_threads(), "torch": torch.__version__,
        "machine": platform.machine(),
        "data": {"root": str(root), "n_train": len(split.train), "n_val": len(split.val),
                 "patch_size": list(plan.patch_size), "target_spacing": list(plan.target_spacing),
                 "augment": cfg.data.augment, "setup_s": round(setup_s, 2)},
        "budget": {"epochs": E, "iters_per_epoch": iters, "batch_size": int(cfg.train.batch_size),
                   "val_every": int(cfg.train.val_every)},
        "genome": {"inputs": [1, 2, 3], "n_c": n_c, "n_f": n_f, "lr": lr}, "seeds": seeds,
        "runs": runs, "summary": summary,
    }


def main(argv: list[str] | None = None) -> int:
    from medseg_nas.config import load_config

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/quickstart.yaml")
    ap.add_argument("--set", action="append", default=[], help="config override, e.g. train.epochs=4")
    ap.add_argument("--data-root", default="", help="default: the config's data.root (must be prepared)")
    ap.add_argument("--ops", default="conv3d_1,conv3d_3", help="comma list; one genome per op")
    ap.add_argument("--seeds", default="0", help="e.g. 0,1 or 0-2")
    ap.add_argument("--n-c", type=int, default=2)
    ap.add_argument("--n-f", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--epochs", type=int, default=0, help="0: the config's train.epochs")
    ap.add_argument("--iters", type=int, default=0, help="0: the config's train.iters_per_epoch")
    ap.add_argument("--out", default="", help="write the figures as JSON here")
    a = ap.parse_args(argv)
    cfg = load_config(a.config, a.set)
    root = Path(a.data_root or cfg.data.root)
    if not (root / "dataset.json").is_file():
        print(f"error: {root} has no dataset.json; run `medseg-nas prepare` first", file=sys.stderr)
        return 1
    out = measure(cfg, root, [o.strip() for o in a.ops.split(",") if o.strip()], _seeds(a.seeds), n_c=a.n_c,
                  n_f=a.n_f, lr=a.lr, epochs=a.epochs, iters=a.iters)
    out["config"], out["argv"] = a.config, list(argv if argv is not None else sys.argv[1:])
    for op, s in out["summary"].items():
        print(f"{op:10s} mean val Dice {s['mean_val_dice']} over {s['n_done']} seed(s), {s['n_params']} params")
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(out, indent=2))
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
