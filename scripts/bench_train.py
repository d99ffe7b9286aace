"""Benchmark the Trainer on the quickstart data; writes the figures to a JSON file.

Default (CPU, the quickstart budget of one epoch): the hippocampus-published genome at 16
first-level filters (n_f=4) on the MNI152-derived tissue set at 3 mm, 48³ patches, batch 2,
12 iterations, validation by sliding window over the validation volumes. Reports per genome:
ms/step, epoch seconds, validation seconds, the share of step time spent waiting on data
(after caching), peak memory, and optionally
  --layout        ms/step with and without the CPU channels_last_3d + group-norm path,
  --determinism   whether two fits with the same seed give the same history,
  --amp           (CUDA) AMP vs fp32 step time and peak memory.

    python scripts/bench_train.py --out benchmarks/results/train_cpu.json
    python scripts/bench_train.py --device cuda --n-f 5 --genomes prostate,hippocampus,cardiac \
        --amp --epochs 1 --iters 20 --out benchmarks/results/train_gpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path


import torch

from medseg_nas.config import load_config
from medseg_nas.space import PUBLISHED_GENOMES, Genome
from medseg_nas.train import Trainer


def build_bundle(args):
    from medseg_nas import data as mdata

    cfg = load_config(args.config, args.set)
    root = Path(args.data_root or cfg.data.root)
    if not (root / "dataset.json").is_file():
        from data_prep import mni152

        print(f"generating {args.cases} MNI152 tissue cases in {root} ...", flush=True)
        mni152.generate(root, cases=args.cases, seed=0)
    t0 = time.perf_counter()
    data = mdata.load_data(root, cfg.data)
    split, plan, bundle = data.split, data.plan, data.bundle
    setup_s = time.perf_counter() - t0
    val_shapes = [list(bundle.val[i]["image"].shape[1:]) for i in range(len(bundle.val))]
    info = {"root": str(root), "n_train": len(split.train), "n_val": len(split.val), "val_shapes": val_shapes,
            "patch_size": list(plan.patch_size), "target_spacing": list(plan.target_spacing),
            "cache_build_s": round(setup_s, 2), "augment": cfg.data.augment}
    return cfg, plan, bundle, info


def fit_row(trainer, genome, seed, epochs, iters):
    r = trainer.fit(genome, seed=seed, epochs=epochs, iters_per_epoch=iters, patience=0)
    row = {"status": r.status, "error": r.error, "n_params": r.n_params, "seconds": r.seconds,
           "epoch_s": [h["seconds"] for h in r.history], "peak_mem_mb": r.peak_mem_mb,
           "val_dice": round(r.val_dice, 4), **r.timing}
    if r.history:
        row["loss"] = [round(h["loss"], 4) for h in r.history]
    return r, row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/quickstart.yaml")
    ap.add_argument("--set", action="append", default=[], help="config override, e.g. train.batch_size=2")
    ap.add_argument("--data-root", default="", help="default: the config's data.root (generated if missing)")
    ap.add_argument("--cases", type=int, default=24)
    ap.add_argument("--genomes", default="hippocampus", help="comma list of published genome names")
    ap.add_argument("--n-f", type=int, default=4, help="first-level filters 2^n_f (4 = 16 filters)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--iters", type=int, default=0, help="0: the config's train.iters_per_epoch")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--num-workers", type=int, default=0)
    ap.add_argument("--layout", action="store_true", help="also time the default memory layout (CPU)")
    ap.add_argument("--determinism", action="store_true", help="fit twice with one seed and compare")
    ap.add_argument("--amp", action="store_true", help="CUDA: compare AMP with fp32")
    ap.add_argument("--out", default="benchmarks/results/train_cpu.json")
    args = ap.parse_args(argv)

    cfg, plan, bundle, info = build_bundle(args)
    iters = args.iters or cfg.train.iters_per_epoch
    out = {"benchmark": "bench_train", "device": args.device, "threads": torch.get_num_threads(),
           "torch": torch.__version__, "machine": platform.machine(), "config": args.config,
           "epochs": args.epochs, "iters_per_epoch": iters, "batch_size": cfg.train.batch_size,
           "n_f": args.n_f, "num_workers": args.num_workers, "data": info, "results": {}}
    if args.device.startswith("cuda") and torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name()
    for name in args.genomes.split(","):
        genome = PUBLISHED_GENOMES[name].with_value("n_f", args.n_f) if name in PUBLISHED_GENOMES else Genome.from_json(name)
        res = {}
        variants = [("default", {})]
        if args.layout:
            variants.append(("contiguous", {"channels_last": False}))
        if args.amp:
            variants = [("amp", {}), ("fp32", {"amp": False})]
        for label, kw in variants:
            tcfg = cfg.train
            if "amp" in kw:
                import dataclasses

                tcfg = dataclasses.replace(cfg.train, amp=kw.pop("amp"))
            trainer = Trainer(tcfg, bundle, plan, device=args.device, progress=False, num_workers=args.num_workers,
                              cell=cfg.space.cell, **kw)
            r, row = fit_row(trainer, genome, 0, args.epochs, iters)
            res[label] = row
            print(f"{name:12s} {label:10s} {row['status']} {row['step_ms']:8.1f} ms/step  epoch {row['epoch_s']} s  "
                  f"val {row['val_s']} s  data-wait {100 * row['data_wait_fraction']:.1f}%  "
                  f"peak {row['peak_mem_mb']} MB  {r.error or ''}", flush=True)
        if args.determinism:
            trainer = Trainer(cfg.train, bundle, plan, device=args.device, progress=False, num_workers=args.num_workers,
                              cell=cfg.space.cell)
            a, _ = fit_row(trainer, genome, 1, 1, 3)
            b, _ = fit_row(trainer, genome, 1, 1, 3)
            strip = lambda h: [{k: v for k, v in x.items() if k != "seconds"} for x in h]  # noqa: E731
            same = strip(a.history) == strip(b.history) and all(
                torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
            res["deterministic"] = bool(same)
            print(f"{name:12s} deterministic: {same}", flush=True)
        out["results"][name] = res
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
