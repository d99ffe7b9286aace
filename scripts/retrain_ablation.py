"""What limits the chosen network's Dice: retrain it with one thing changed at a time (issue 13).

    python scripts/retrain_ablation.py configs/hippocampus_cpu.yaml \
        --record benchmarks/results/hippocampus_whole_job_4x50.json \
        --variants "patch_nnunet;augment_full;n_f5" --out benchmarks/results/hippocampus_ablation.json

The record is a whole-job summary (`scripts/whole_job_summary.py`): it names the chosen genome,
the run's test cases and how many seconds the retrain trained. Each variant changes one thing —
the patch, the augmentation, the network's width or depth — and trains the record's genome with
the retrain's recipe (the config's train/retrain sections, training cases = train + validation
minus the monitor slice, best epoch on the monitor slice) for **the same seconds** as the run's
retrain (`Trainer.fit(seconds=...)`, the schedule that follows the clock), then scores it on the
run's own test split as `medseg-nas evaluate` scores (medseg_nas.bench.scoring). So a
variant that costs more per step pays for it in steps, as it would inside the 2-hour job.
Variants named `*_40x50` train the retrain's step budget instead (for when this machine is not
as fast as the one that ran the record). `base` is the control: the run's recipe on this machine,
with the record's retrain augmentation (not the config's current `retrain.augment`).

The run directory itself is not needed: the split, fingerprint and plan are rebuilt from the
config in `--work` (one folder per variant, since the patch is part of the plan), and the script
refuses to go on when the rebuilt test split is not the record's.

Resumable: each variant's row is written to `--out` as soon as it finishes; a rerun skips the
variants already there.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from medseg_nas.bench.scoring import fit_and_score
from medseg_nas.bench.stats import paired_against
from medseg_nas.config import load_config
from medseg_nas.jsonio import atomic_write
from medseg_nas.space import OPS, Genome
from medseg_nas.stages.retrain import retrain_augment, retrain_data
from medseg_nas.train import Trainer

EPOCH_CAP = 100_000  # the clock ends every fit long before

# name -> (config overrides, genome overrides, what it tests[, epochs: the retrain's step budget
# (epochs x retrain.iters_per_epoch) instead of its seconds; "retrain": the config's retrain.epochs])
VARIANTS: dict[str, tuple] = {
    "base": ([], {}, "the retrain as the run did it, on the clock schedule (seed control)"),
    "patch_nnunet": (["data.patch_size=[40,56,40]"], {},
                     "nnU-Net's planned patch for this task (ours is planned smaller)"),
    "augment_full": (["retrain.augment=full"], {}, "flips + intensity + affine (rotation, scaling) instead of light"),
    "augment_light": (["retrain.augment=light"], {},
                      "flips + intensity only: the control for a record whose retrain used full augmentation"),
    "augment_full_40x50": (["retrain.augment=full"], {}, "full augmentation at the run's step budget, not its seconds",
                           40),
    "n_f5": ([], {"n_f": 5}, "twice the filters at every level (outside the space: n_f 3..4)"),
    "n_c3": ([], {"n_c": 3}, "one more resolution level (outside the space: n_c 2)"),
    "n_c3_n_f3": ([], {"n_c": 3, "n_f": 3}, "one more level at half the filters: depth at about equal parameters"),
    # the authors' cell against ours at the config's retrain step budget (issue 26), not the clock
    "base_steps": ([], {}, "our residual cell at the config's retrain step budget (control of cell_emonas_steps)",
                   "retrain"),
    "cell_emonas_steps": (["space.cell=emonas"], {}, "the authors' cell (EMONASArch.py) at the config's retrain step "
                          "budget", "retrain"),
    # the pick's topology with every op swapped to one family, same kernel sizes (issue 26: does the mix matter?)
    "ops_2d": ([], lambda g: {"ops": swap_ops(g["ops"], "conv2d")}, "every op k x k x 1 (2D), the pick's kernel sizes"),
    "ops_p3d": ([], lambda g: {"ops": swap_ops(g["ops"], "p3d")}, "every op pseudo-3D, the pick's kernel sizes"),
    "ops_3d": ([], lambda g: {"ops": swap_ops(g["ops"], "conv3d")},
               "every op k x k x k (3D), the pick's kernel sizes capped at 5 (the space's largest 3D op)"),
    "ops_3d3": ([], lambda g: {"ops": swap_ops(g["ops"], "conv3d", 3)},
                "every op 3 x 3 x 3 (3D): the cheapest 3D op, a standard 3D U-Net's kernel"),
}


def swap_ops(ops: list[str], kind: str, k: int | None = None) -> list[str]:
    """Each op as `kind` with its own kernel size (or k), capped at the largest kernel the space has
    for `kind` (3D: 5); identity and 1x1x1 ops stay as they are."""
    largest = max(int(o.partition("_")[2]) for o in OPS if o.startswith(f"{kind}_"))
    out = []
    for op in ops:
        base, _, size = op.partition("_")
        keep = base == "identity" or size in ("", "1")
        out.append(op if keep else f"{kind}_{min(int(k or size), largest)}")
    return out


def genome_variant(record: dict, changes) -> Genome:
    """The record's genome with `changes` (a dict, or a function of the genome dict returning one)."""
    g = record["chosen"]["genome"]
    return Genome.from_dict({**g, **(changes(g) if callable(changes) else changes)})


def record_augment(record: dict) -> str:
    """The augmentation the record's retrain used: the control every variant changes one thing of,
    whatever the config's retrain.augment says today (records before retrain.augment: data.augment)."""
    data = record["data"]
    return data.get("retrain_augment") or data["augment"]


def run_variant(config: str, record: dict, name: str, seed: int, work: Path, device: str,
                seconds: float | None = None) -> dict:
    overrides, changes, why, *steps = VARIANTS[name]
    cfg = load_config(config, [f"retrain.augment={record_augment(record)}", *overrides])
    run_dir = work / name
    run_dir.mkdir(parents=True, exist_ok=True)
    bundle, plan = retrain_data(cfg, run_dir, seed)
    if sorted(bundle.ids["test"]) != sorted(record["data"]["test_ids"]):
        raise SystemExit(f"{name}: the rebuilt test split is not the record's (config or dataset changed)")
    genome = genome_variant(record, changes)
    seconds = None if steps else float(seconds or record["retrain"]["seconds"])
    if steps and steps[0] == "retrain":  # the config's own retrain epochs
        steps = [cfg.retrain.epochs]
    trainer = Trainer(cfg.train, bundle, plan, device=device, progress=False, cell=cfg.space.cell)
    t0 = time.perf_counter()
    r, row = fit_and_score(trainer, genome, seed, plan, bundle, epochs=steps[0] if steps else EPOCH_CAP,
                           iters_per_epoch=cfg.retrain.iters_per_epoch, patience=cfg.retrain.patience,
                           seconds=seconds)
    row.update(variant=name, why=why, overrides=overrides, genome=genome.to_dict(), describe=genome.describe(),
               patch_size=list(plan.patch_size), augment=retrain_augment(cfg), epochs_run=r.epochs_run,
               steps=r.timing.get("steps"), target_s=seconds, wall_s=round(time.perf_counter() - t0, 1))
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", help="the run's YAML config")
    ap.add_argument("--record", required=True, help="whole-job summary JSON of the run")
    ap.add_argument("--variants", default=";".join(VARIANTS), help=f"';'-separated, in order (known: {', '.join(VARIANTS)})")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="runs/ablation", help="where the rebuilt split/plan files go")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seconds", type=float, default=None,
                    help="training seconds per variant (default: the record's retrain seconds)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    record = json.loads(Path(args.record).read_text())
    names = [v.strip() for v in args.variants.split(";") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"--variants: unknown {unknown} (known: {', '.join(VARIANTS)})")
    out = Path(args.out)
    doc = json.loads(out.read_text()) if out.is_file() else {
        "benchmark": "retrain_ablation", "config": args.config, "record": args.record,
        "chosen": record["chosen"], "record_test_mean_dice": record["test"]["mean_dice"],
        "seconds": args.seconds or record["retrain"]["seconds"],
        "machine": {"cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "python": platform.python_version()},
        "rows": []}
    for name in names:
        if any(r["variant"] == name and r["seed"] == args.seed for r in doc["rows"]):
            print(f"{name} seed {args.seed}: already in {out}, skipped", flush=True)
            continue
        row = run_variant(args.config, record, name, args.seed, Path(args.work), args.device, args.seconds)
        doc["rows"].append(row)
        atomic_write(out, json.dumps(doc, indent=2, default=str))
        print(f"{name:14s} seed {args.seed} {row['status']:6s} {(row.get('n_params') or 0) / 1e6:6.3f}M "
              f"patch {row['patch_size']} epochs {row['epochs_run']} train {row['train_s']} s "
              f"test {row.get('test_mean_dice', float('nan')):.4f} "
              f"hd95 {row.get('test_mean_hd95_mm', float('nan')):.2f} mm", flush=True)
    if doc["rows"]:  # the paired comparison of every row there (with --variants "": nothing new trained)
        doc["paired_vs_base"] = paired_against(doc["rows"], "base")
        atomic_write(out, json.dumps(doc, indent=2, default=str))
    for name, iv in doc.get("paired_vs_base", {}).items():
        print(f"{name} - base: mean Dice {iv['mean']:+.4f} [{iv['low']:+.4f}, {iv['high']:+.4f}] over {iv['n_cases']} cases, "
              f"seeds {iv['seeds']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
