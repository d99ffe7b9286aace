"""One finished `medseg-nas run` directory as a benchmark record (issue 13, "Hippocampus, whole job").

    python scripts/whole_job_summary.py runs/hippocampus_cpu --out benchmarks/results/hippocampus_whole_job.json

Reads only what the run wrote (config.yaml, front.json, trials.sqlite, best/retrain.json,
best/history.json, best/summary.json, stage_times.json) and states the issue's targets as met or
not: mean test Dice >= 0.89 (nnU-Net's published mean on this task), <= 0.5 M parameters,
the whole job <= 2 h. `--peers` adds the equal-wall-clock comparison written by
scripts/whole_job_peers.py (DynUNet's Dice with >= 10x fewer parameters). `--target-dice`
sets the Dice target for another dataset (ACDC, issue 26: 0.88 mean foreground Dice).

    python scripts/whole_job_summary.py runs/acdc_cpu --target-dice 0.88 --out benchmarks/results/acdc_whole_job.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from medseg_nas.bench.stats import mean_dice_ci  # noqa: F401 - re-exported: tests call it from this script
from medseg_nas.bench.whole_job import TARGET_DICE, add_peer_target, chosen_costs, summarise
from medseg_nas.jsonio import atomic_write
from medseg_nas.rundir import RunDir


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("--peers", default="", help="JSON written by scripts/whole_job_peers.py for this run")
    ap.add_argument("--target-dice", type=float, default=TARGET_DICE,
                    help=f"mean test Dice target (default {TARGET_DICE}: nnU-Net on MSD hippocampus)")
    ap.add_argument("--costs", action="store_true",
                    help="measure the chosen network's MACs, activation memory and CPU latency here (run alone)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    doc = summarise(RunDir(args.run_dir), args.target_dice)
    if args.costs:
        doc["chosen"]["costs"] = chosen_costs(RunDir(args.run_dir))
    if args.peers:
        peers = json.loads(Path(args.peers).read_text())
        peers["_path"] = args.peers
        add_peer_target(doc, peers)
    atomic_write(Path(args.out), json.dumps(doc, indent=2, default=str))
    print(json.dumps({"test": doc["test"], "total_s": doc["total_s"], "targets": doc["targets"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
