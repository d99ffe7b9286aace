"""NAS-found networks vs the networks users would pick instead (issue 7, part 1).

Every network is trained by the project's `Trainer` (same data pipeline, patch, epochs,
iterations, loss, optimiser recipe, schedule and training seed) and scored on the held-out test
split of the same `make_split`:

- `monai_unet`     MONAI UNet, the standard 4-level configuration of the MONAI tutorials
                   (channels 16-32-64-128-256, 2 residual units, strides from the data plan),
                   affine instance norm;
- `monai_dynunet`  MONAI DynUNet configured as nnU-Net's 3d_fullres planner would for this
                   spacing and patch: a full-resolution first stage, downsampling while the
                   feature map stays >= 4 voxels and the axis is not more than 2x coarser than
                   the finest (the project's `plan_from_spacing`, nnU-Net's rule), 3x3x3 kernels
                   (1 along an axis still > 2x coarser), filters 32·2^i capped at 320, instance
                   norm, LeakyReLU, no deep supervision (the Trainer's loss takes one output);
- `emonas_<name>`  the three published EMONAS-Net genomes (`medseg_nas.space.PUBLISHED_GENOMES`)
                   at 2^n_f first-level filters (`--n-f`, default 3 = 8 filters, the CPU quickstart
                   space; published: n_f=5, 32 filters; rows get `_nf<n>` when n_f != 3), with their
                   published learning rate or, with `--genome-lr`, the given one (`_lr<lr>` rows);
- `nas_knee`, `nas_small`  with `--run-dir`: the knee of a search run's Pareto front
                   (front.json) and the smallest front member whose validation Dice is within
                   `--dice-tol` (1 point) of the front's best.

Each network is trained with its own learning rate: the genome's for EMONAS/NAS networks,
`--peer-lr` (default 1e-3, a common AdamW rate; not tuned) for the MONAI peers. Test metrics (Dice, HD95 mm per class) are computed as `medseg-nas evaluate`
computes them (medseg_nas.bench.scoring: back on each test file's original grid, in its own
spacing; records before 2026-12-03 scored on the plan's grid); inference ms/volume is one test
file's read, preprocessing, sliding window and inversion on this machine.

    python scripts/bench_peers.py --dataset mni152 --data-root /tmp/bench/mni152 \
        --spacing 4 4 4 --patch 32 32 32 --epochs 8 --iters 12 --out benchmarks/results/peers_mni152_cpu.json
    python scripts/bench_peers.py --dataset hippocampus --data-root ../shared/data/Task04_Hippocampus \
        --cases 60 --epochs 8 --iters 12 --out benchmarks/results/peers_hippocampus_cpu.json
    python scripts/bench_peers.py --tiny --out /tmp/peers_tiny.json     # CI smoke (synthetic phantoms)
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

from medseg_nas.bench.data import add_data_and_budget_args, build_data, tiny_data
from medseg_nas.bench.peers import add_dynunet_claims, networks
from medseg_nas.bench.scoring import fit_and_score, seed_means
from medseg_nas.config import TrainConfig
from medseg_nas.train import Trainer


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_and_budget_args(ap, seeds_default="0")
    ap.add_argument("--genome-lr", type=float, default=0.0,
                    help="train the published genomes at this lr instead of their own (rows get an _lr suffix)")
    ap.add_argument("--peer-lr", type=float, default=1e-3, help="AdamW learning rate of the MONAI peers")
    ap.add_argument("--run-dir", default="", help="search run directory (front.json) for the NAS networks")
    ap.add_argument("--dice-tol", type=float, default=0.01)
    ap.add_argument("--nets", default="", help="comma list of names or globs (emonas_*) restricting the networks")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tiny", action="store_true", help="smoke mode: synthetic phantoms, 1 epoch of 1 step")
    ap.add_argument("--merge", action="store_true",
                    help="add to the results already in --out (same dataset, budget and split required)")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    if args.tiny:
        args.data_root = str(tiny_data(Path(args.out or "/tmp/peers_tiny.json").with_suffix("") / "data"))
        args.dataset, args.epochs, args.iters, args.spacing, args.patch = "synthetic", 1, 1, [4.0, 4.0, 4.0], [16, 16, 16]
        args.test_fraction = args.val_fraction = 0.34
    out_path = Path(args.out or f"benchmarks/results/peers_{args.dataset}_cpu.json")

    plan, bundle, info = build_data(args)
    tcfg = TrainConfig(epochs=args.epochs, iters_per_epoch=args.iters, batch_size=args.batch_size, val_every=1,
                       patience=0, device=args.device)
    nets = networks(args, plan)
    seeds = [int(s) for s in args.seeds.split(",")]
    doc = {"benchmark": "bench_peers", "dataset": args.dataset, "device": args.device,
           "threads": torch.get_num_threads(), "torch": torch.__version__, "machine": platform.machine(),
           "processor": platform.processor(), "epochs": args.epochs, "iters_per_epoch": args.iters,
           "batch_size": args.batch_size, "seeds": seeds, "n_f_published": args.n_f, "peer_lr": args.peer_lr,
           "run_dir": args.run_dir or None, "data": info, "argv": sys.argv[1:] if argv is None else list(argv),
           "results": {}}
    if args.merge and out_path.is_file():
        old = json.loads(out_path.read_text())
        same = ("dataset", "epochs", "iters_per_epoch", "batch_size", "seeds")
        if any(old.get(k) != doc[k] for k in same) or old["data"]["test_ids"] != info["test_ids"]:
            raise SystemExit(f"--merge: {out_path} was measured with another dataset, budget or split")
        doc["results"] = old["results"]
        doc["merged_argv"] = old.get("merged_argv", []) + [old.get("argv")]
    print(f"data: {info['n_train']}/{info['n_val']}/{info['n_test']} train/val/test, patch {info['patch_size']}, "
          f"spacing {info['target_spacing']}", flush=True)
    for name, spec, fn, extra in nets:
        runs = []
        for seed in seeds:
            trainer = Trainer(tcfg, bundle, plan, device=args.device, progress=False, network_fn=fn)
            r, row = fit_and_score(trainer, spec, seed, plan, bundle)
            runs.append(row)
            print(f"{name:14s} seed {seed} {r.status:6s} {(r.n_params or 0) / 1e6:7.3f}M  train {r.seconds:7.1f}s  "
                  f"val {r.val_dice:.3f}  test {row.get('test_mean_dice', float('nan')):.3f}  "
                  f"hd95 {row.get('test_mean_hd95_mm', float('nan')):.2f} mm  "
                  f"{row.get('infer_ms_per_volume', float('nan')):.0f} ms/vol {r.error or ''}", flush=True)
        summary = {"n_params": runs[0]["n_params"], "runs": runs, "lr": float(spec.lr), **extra}
        summary.update(seed_means(runs))
        doc["results"][name] = summary
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(doc, indent=2))  # after every network: partial results survive
    add_dynunet_claims(doc["results"])
    out_path.write_text(json.dumps(doc, indent=2))
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
