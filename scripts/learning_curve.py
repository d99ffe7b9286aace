"""Measure one genome's learning curve (validation Dice vs training steps) to size a retrain.

A retrain budget chosen by guess either stops on a rising curve (the network was not
converged) or wastes CPU hours on a plateau. This trains one genome with a config's data chain
and recipe, validating every epoch, and reports where the curve plateaus: the first epoch after
which the best validation Dice never improves by more than `--tol` again.

    python scripts/learning_curve.py --config configs/hippocampus_cpu.yaml \
        --genome '{"inputs": [0, 1, 2], "ops": ["identity", "conv3d_5", "p3d_7", "p3d_3"], "n_c": 2, "n_f": 3, "lr": 0.001}' \
        --epochs 60 --iters 50 --out benchmarks/results/learning_curve_hippocampus.json

The JSON is rewritten after every epoch (a killed run keeps what it measured). The epoch's
seconds are only meaningful when nothing else ran on the cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from medseg_nas.bench.stats import plateau_epoch
from medseg_nas.config import load_config
from medseg_nas.results import TrialStatus
from medseg_nas.space import Genome
from medseg_nas.train import Trainer


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--set", action="append", default=[], help="config override, e.g. data.patch_size=[32,32,32]")
    ap.add_argument("--data-root", default="", help="MSD-layout folder (default: the config's data.root)")
    ap.add_argument("--genome", required=True, help="genome JSON")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tol", type=float, default=0.005, help="Dice gain below which the curve counts as flat")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    from medseg_nas import data as mdata

    cfg = load_config(args.config, args.set)
    root = Path(args.data_root or cfg.data.root)
    genome = Genome.from_json(args.genome)
    t0 = time.perf_counter()
    data = mdata.load_data(root, cfg.data)
    setup_s = time.perf_counter() - t0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "benchmark": "learning_curve", "config": args.config, "overrides": args.set, "root": str(root), "genome": genome.to_dict(),
        "cell": cfg.space.cell, "seed": args.seed, "epochs": args.epochs, "iters_per_epoch": args.iters,
        "batch_size": cfg.train.batch_size, "patch_size": list(data.plan.patch_size),
        "target_spacing": list(data.plan.target_spacing), "augment": cfg.data.augment,
        "n_train": len(data.split.train), "n_val": len(data.split.val), "setup_s": round(setup_s, 1),
        "machine": {"cpu_threads": torch.get_num_threads(), "python": platform.python_version(),
                    "torch": torch.__version__},
    }

    history: list[dict] = []

    def write(final: bool) -> None:
        val = [h["val_dice"] for h in history if h["val_dice"] is not None]
        doc = {**meta, "finished": final, "curve": [
            {"epoch": h["epoch"], "steps": h["epoch"] * args.iters, "loss": round(h["loss"], 4),
             "train_dice": round(h["train_dice"], 4), "val_dice": h["val_dice"],
             "val_dice_per_class": h["val_dice_per_class"], "seconds": h["seconds"]} for h in history]}
        if val:
            p = plateau_epoch(val, args.tol)
            doc["plateau"] = {"tol": args.tol, "epoch": p, "steps": p * args.iters, "best_val_dice": max(val),
                              "best_epoch": val.index(max(val)) + 1}
        out.write_text(json.dumps(doc, indent=2))

    def on_epoch(row: dict) -> None:
        history.append(row)
        write(False)

    trainer = Trainer(cfg.train, data.bundle, data.plan, device=args.device, progress=True, on_epoch=on_epoch,
                      cell=cfg.space.cell)
    r = trainer.fit(genome, seed=args.seed, epochs=args.epochs, iters_per_epoch=args.iters, patience=0)
    write(True)
    if r.status != TrialStatus.DONE:
        print(f"failed: {r.error}")
        return 1
    doc = json.loads(out.read_text())
    print(json.dumps(doc.get("plateau"), indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
