"""The authors' cell vs ours: the published genomes trained with `space.cell` = emonas and = residual
(issue 12, "which cell trains better, and by how much").

Every (genome, cell, learning rate, seed) is one training run of the project's `Trainer` on the
same data, split, patch, budget and training seed, scored on the held-out test split exactly as
`bench_peers.py` scores its networks (its `build_data` and `fit_and_score` are reused). Networks:
the three `PUBLISHED_GENOMES` at 2^n_f first-level filters (`--n-f`, default 3 = 8 filters, the
CPU budget of the other benchmarks; published: 32) — rows `<genome>_<cell>[_lr<lr>]`.

Learning rate (`--genome-lr`, comma list): default 1e-3, the peers' rate, because the published
3e-4 / 4e-4 are tuned for hundreds of epochs and barely move in ~100 steps (docs/studies/peers.md); `published` trains each genome at its own rate. Both cells always get the same rate.

The comparison pairs the two cells on each (genome, lr, seed) and reports per genome the test
Dice mean ± std over seeds for each cell, the mean paired difference (emonas − residual), and
over all pairs: the mean difference, how many pairs each cell wins, and the Wilcoxon signed-rank
p-value (scipy). Results: benchmarks/results/cells_<dataset>.json (written after every run).

    python scripts/bench_cells.py --dataset mni152 --data-root /tmp/bench/mni152 --spacing 4 4 4 \
        --patch 32 32 32 --out benchmarks/results/cells_mni152.json
    python scripts/bench_cells.py --dataset hippocampus --data-root ../shared/data/Task04_Hippocampus \
        --cases 60 --out benchmarks/results/cells_hippocampus.json
    python scripts/bench_cells.py --tiny --out /tmp/cells_tiny.json      # smoke (synthetic phantoms)
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

from medseg_nas.bench.cells import compare, network_summary, runs_to_train
from medseg_nas.bench.data import add_data_and_budget_args, build_data, tiny_data
from medseg_nas.bench.scoring import fit_and_score
from medseg_nas.config import TrainConfig
from medseg_nas.space import CELLS
from medseg_nas.train import Trainer


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_and_budget_args(ap, seeds_default="0,1,2")
    ap.add_argument("--genome-lr", default="1e-3", help="comma list of learning rates; 'published' = the genome's own")
    ap.add_argument("--cells", default="emonas,residual", help="comma list of cells to train (the comparison pairs these two)")
    ap.add_argument("--nets", default="", help="comma list of row names or globs (e.g. 'hippocampus_*')")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tiny", action="store_true", help="smoke mode: synthetic phantoms, 1 epoch of 1 step, seed 0")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    for cell in args.cells.split(","):
        if cell not in CELLS:
            raise SystemExit(f"--cells: unknown cell {cell!r} (expected {', '.join(CELLS)})")
    if args.tiny:
        args.data_root = str(tiny_data(Path(args.out or "/tmp/cells_tiny.json").with_suffix("") / "data"))
        args.dataset, args.epochs, args.iters, args.spacing, args.patch = "synthetic", 1, 1, [4.0, 4.0, 4.0], [16, 16, 16]
        args.test_fraction = args.val_fraction = 0.34
        args.seeds = "0"
    out_path = Path(args.out or f"benchmarks/results/cells_{args.dataset}.json")

    plan, bundle, info = build_data(args)
    tcfg = TrainConfig(epochs=args.epochs, iters_per_epoch=args.iters, batch_size=args.batch_size, val_every=1,
                       patience=0, device=args.device)
    seeds = [int(s) for s in args.seeds.split(",")]
    doc = {"benchmark": "bench_cells", "dataset": args.dataset, "device": args.device,
           "threads": torch.get_num_threads(), "torch": torch.__version__, "machine": platform.machine(),
           "processor": platform.processor(), "epochs": args.epochs, "iters_per_epoch": args.iters,
           "batch_size": args.batch_size, "seeds": seeds, "n_f_published": args.n_f, "genome_lr": args.genome_lr,
           "data": info, "argv": sys.argv[1:] if argv is None else list(argv), "results": {}}
    print(f"data: {info['n_train']}/{info['n_val']}/{info['n_test']} train/val/test, patch {info['patch_size']}, "
          f"spacing {info['target_spacing']}", flush=True)
    for row, name, cell, g in runs_to_train(args):
        runs = []
        for seed in seeds:
            trainer = Trainer(tcfg, bundle, plan, device=args.device, progress=False, cell=cell)
            r, run = fit_and_score(trainer, g, seed, plan, bundle)
            runs.append(run)
            print(f"{row:28s} seed {seed} {r.status:6s} {(r.n_params or 0) / 1e6:7.3f}M  train {r.seconds:7.1f}s  "
                  f"val {r.val_dice:.3f}  test {run.get('test_mean_dice', float('nan')):.3f}  "
                  f"hd95 {run.get('test_mean_hd95_mm', float('nan')):.2f} mm {r.error or ''}", flush=True)
        doc["results"][row] = network_summary(name, cell, g, runs)
        doc["comparison"] = compare(doc["results"])
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(doc, indent=2))  # after every network: partial results survive
    c = doc.get("comparison", {})
    if c.get("n_pairs"):
        print(f"emonas − residual test Dice over {c['n_pairs']} pairs: {c['mean_diff_emonas_minus_residual']:+.4f} "
              f"(emonas wins {c['emonas_wins']}, residual wins {c['residual_wins']}, Wilcoxon p {c['wilcoxon_p']})")
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
