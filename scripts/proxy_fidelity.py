"""Does the search's proxy rank networks as a full training does? (issue 13, proxy fidelity)

    python scripts/proxy_fidelity.py runs/hippocampus_cpu --genomes 10 --epochs 20 --iters 50 \
        --out benchmarks/results/hippocampus_proxy_fidelity.json

Takes `--genomes` distinct finished trials of a search run (every Pareto-front member first,
then non-front trials spread evenly over f1, so good and bad proxies are both in), retrains each
exactly as `retrain` does (the run's config and training cases: train + validation minus the
monitor slice, same seed) for `--epochs` x `--iters` steps — the final retrain's budget or a
shorter one, stored in the output — and scores it on the run's test split (Dice per class,
scored as `medseg-nas evaluate` scores, medseg_nas.bench.scoring, as scripts/whole_job_peers.py does).

Reports Kendall tau between the trial's proxy and the retrained test Dice, for two proxies: -f1
(f1 is the search's expected Dice *error*, so higher -f1 should mean higher Dice) and the trial's
own validation Dice. tau >= 0.5 is the issue's bar for a faithful proxy.

Resumable: each genome's result is written to `--out` as it finishes; a rerun skips genomes
already there (same run and budget required) and recomputes tau over everything present.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from medseg_nas.bench.scoring import retrain_and_score
from medseg_nas.bench.stats import taus
from medseg_nas.jsonio import atomic_write
from medseg_nas.results import TrialStatus
from medseg_nas.rundir import RunDir
from medseg_nas.search.archive import pareto_front
from medseg_nas.space import Genome
from medseg_nas.stages.retrain import retrain_data

def choose_trials(rows: list, n: int) -> list:
    """Up to n // 2 Pareto-front members (spread over size), the rest non-front trials spread evenly
    over f1; distinct genomes only (a genome asked twice is one network)."""
    best: dict[str, object] = {}
    for r in rows:
        if r.status == TrialStatus.DONE and r.f1 is not None and (r.key not in best or r.id < best[r.key].id):
            best[r.key] = r
    done = sorted(best.values(), key=lambda r: r.id)
    if not done:
        return []
    on_front = {int(i) for i in pareto_front([(r.f1, r.f2) for r in done])}
    front = sorted((done[i] for i in on_front), key=lambda r: r.f2)
    rest = sorted((r for i, r in enumerate(done) if i not in on_front), key=lambda r: r.f1)

    def spread(items: list, k: int) -> list:
        if k <= 0 or not items:
            return []
        return [items[i] for i in np.unique(np.round(np.linspace(0, len(items) - 1, min(k, len(items)))).astype(int))]

    picked = spread(front, max(1, n // 2))
    picked += spread(rest, n - len(picked))
    if len(picked) < n:  # too few non-front trials: fill with the remaining front members
        picked += [r for r in front if r not in picked][: n - len(picked)]
    return picked


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("--genomes", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=0, help="retrain epochs (default: the run's retrain.epochs)")
    ap.add_argument("--iters", type=int, default=0, help="iterations per epoch (default: the run's retrain's)")
    ap.add_argument("--seed", type=int, default=None,
                    help="training seed of the retrains (default: the run's train.seed); another seed into "
                         "another --out measures how much of the retrained Dice's spread is seed noise")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    run = RunDir(args.run_dir)
    cfg = run.config()
    epochs = args.epochs or cfg.retrain.epochs
    iters = args.iters or cfg.retrain.iters_per_epoch
    seed = int(cfg.train.seed) if args.seed is None else args.seed
    out_path = Path(args.out)
    doc = json.loads(out_path.read_text()) if out_path.is_file() else {}
    if doc and (doc.get("run_dir") != str(run.path) or doc.get("budget") != [epochs, iters]
                or doc.get("seed") != seed):
        raise SystemExit(f"{out_path} was measured on {doc.get('run_dir')} at {doc.get('budget')}, seed "
                         f"{doc.get('seed')}; not {run.path} at {[epochs, iters]}, seed {seed}")
    doc = doc or {"benchmark": "proxy_fidelity", "run_dir": str(run.path), "budget": [epochs, iters],
                  "final_retrain_budget": [cfg.retrain.epochs, cfg.retrain.iters_per_epoch],
                  "trial_budget": [cfg.train.epochs, cfg.train.iters_per_epoch], "seed": seed,
                  "torch_threads": torch.get_num_threads(), "entries": []}
    done_ids = {e["trial_id"] for e in doc["entries"]}
    chosen = choose_trials(run.trial_rows(), args.genomes)
    bundle, plan = retrain_data(cfg, run.path, int(cfg.train.seed))
    print(f"{len(chosen)} genomes, {len(done_ids)} already measured; retrain {epochs} x {iters} steps", flush=True)
    for k, row in enumerate(chosen, start=1):
        if row.id in done_ids:
            continue
        genome = Genome.from_dict(row.genome)
        scored = retrain_and_score(cfg, genome, seed, plan, bundle, args.device, epochs=epochs,
                                   iters_per_epoch=iters, patience=cfg.retrain.patience)
        # val_dice: the retrain's monitor slice; search_val_dice: the search trial's validation
        entry = {"trial_id": row.id, "genome": row.genome, "describe": genome.describe(), "f1": row.f1, "f2": row.f2,
                 "search_val_dice": (row.result or {}).get("val_dice"), **scored}
        doc["entries"].append(entry)
        doc["kendall"] = taus(doc["entries"])
        atomic_write(out_path, json.dumps(doc, indent=2, default=str))
        print(f"[{k}/{len(chosen)}] trial {row.id} f1 {row.f1:.4f} {(row.n_params or 0):>9,} params -> test "
              f"{entry.get('test_mean_dice', float('nan')):.4f} ({entry['train_s']:.0f} s)", flush=True)
    doc["kendall"] = taus(doc["entries"])
    atomic_write(out_path, json.dumps(doc, indent=2, default=str))
    print(json.dumps(doc["kendall"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
