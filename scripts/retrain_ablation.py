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

`--pair-with PEERS` pairs every row with the run's own model as well, per test case (over patients
where the datalist groups frames), from the run's `scripts/whole_job_peers.py` record
(`paired_vs_run_model`): with `--seconds` shorter than the retrain's, `base` against the run's model
says what the extra seconds bought the same genome.

Resumable: each variant's row is written to `--out` as soon as it finishes; a rerun skips the
variants already there.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

from medseg_nas.bench.ablation import VARIANTS, paired_vs_run_model, run_variant
from medseg_nas.bench.ablation import record_augment  # noqa: F401 - re-exported: tests call it from this script
from medseg_nas.bench.data import groups_of
from medseg_nas.bench.stats import paired_against
from medseg_nas.config import load_config
from medseg_nas.jsonio import atomic_write


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
    ap.add_argument("--pair-with", default=None,
                    help="the run's whole_job_peers record: also pair every row with the run's own model")
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
        # over whole patients where the datalist groups cases (ACDC's ED/ES frames of one patient)
        groups = groups_of(load_config(args.config).data.root)
        doc["paired_vs_base"] = paired_against(doc["rows"], "base", case_groups=groups)
        if args.pair_with:
            doc["run_model_record"] = args.pair_with  # beside the pairs, so every entry there is one pair
            doc["paired_vs_run_model"] = paired_vs_run_model(doc["rows"], json.loads(Path(args.pair_with).read_text()),
                                                             groups)
        atomic_write(out, json.dumps(doc, indent=2, default=str))
    for name, iv in doc.get("paired_vs_base", {}).items():
        print(f"{name} - base: mean Dice {iv['mean']:+.4f} [{iv['low']:+.4f}, {iv['high']:+.4f}] over {iv['n_cases']} cases "
              f"(resampling {iv.get('n_groups', iv['n_cases'])} {iv.get('unit', 'case')}s), "
              f"seeds {iv['seeds']}", flush=True)
    for name, pair in doc.get("paired_vs_run_model", {}).items():
        iv = pair["mean"]
        print(f"{name} - the run's own model: mean Dice {iv['mean']:+.4f} [{iv['low']:+.4f}, {iv['high']:+.4f}] "
              f"over {iv['n_cases']} cases", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
