"""Do two trial caches of the same proxy rank genomes alike? (issue 27, item 5)

Why: the strategy comparison's trials ran on a GPU (AMP, other kernels: another problem, so the
CUDA cache never answers a CPU trial), while the proxy's fidelity against a 400-step retrain was
measured on CPU. Where the same genome was trained under both, the two f1 values say whether the
GPU proxy orders genomes as the measured CPU proxy does. Genomes are matched by their key (a hash
of the genome, not of the budget); each file must hold one budget, read by the one cache reader
(`TrialCache`: the first line for a genome wins, a damaged line is skipped with a warning).

    python scripts/cache_agreement.py benchmarks/cache/search_hippocampus_4x50_cpu.jsonl \\
        benchmarks/cache/search_hippocampus_4x50_cuda.jsonl --out benchmarks/results/hippocampus_proxy_cpu_vs_cuda.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from medseg_nas.bench.stats import tau_table
from medseg_nas.bench.trial_cache import finished_trials


def tau_with_interval(a: np.ndarray, b: np.ndarray) -> dict:
    """Kendall τ-b of a against b and its 95 % percentile bootstrap over genomes (`stats.tau_table`)."""
    t = tau_table([{"a": x, "b": y} for x, y in zip(a, b)], "b", ("a",), resamples=10000, min_n=3)
    return {"n": t["n"], **t.get("a", {"tau": None})}


def agreement(a: dict[str, dict], b: dict[str, dict]) -> dict:
    common = sorted(set(a) & set(b))
    fa = np.array([a[g]["f1"] for g in common], float)
    fb = np.array([b[g]["f1"] for g in common], float)
    learned = np.array([(a[g].get("val_dice") or 0) > 0 and (b[g].get("val_dice") or 0) > 0 for g in common])
    sa = np.array([a[g].get("seconds") or np.nan for g in common], float)
    sb = np.array([b[g].get("seconds") or np.nan for g in common], float)
    return {
        "n_common": len(common), "n_a": len(a), "n_b": len(b),
        "kendall_f1": tau_with_interval(fa, fb),
        # a network that learned nothing sits at the f1 bound in both: it inflates τ for free
        "kendall_f1_learned_only": tau_with_interval(fa[learned], fb[learned]),
        "mean_abs_f1_diff": round(float(np.mean(np.abs(fa - fb))), 4) if common else None,
        "mean_f1_diff_b_minus_a": round(float(np.mean(fb - fa)), 4) if common else None,
        "seconds_ratio_a_over_b_median": round(float(np.nanmedian(sa / sb)), 2) if common else None,
        "genomes": [{"genome": json.loads(a[g]["genome"]), "f1_a": round(a[g]["f1"], 5), "f1_b": round(b[g]["f1"], 5),
                     "val_dice_a": a[g].get("val_dice"), "val_dice_b": b[g].get("val_dice"),
                     "n_params": a[g].get("n_params")} for g in common],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cache_a")
    ap.add_argument("cache_b")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    doc = {"benchmark": "cache_agreement", "cache_a": args.cache_a, "cache_b": args.cache_b,
           **agreement(finished_trials(Path(args.cache_a))[1], finished_trials(Path(args.cache_b))[1])}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    k, kl = doc["kendall_f1"], doc["kendall_f1_learned_only"]
    print(f"{doc['n_common']} genomes in both: τ(f1) {k['tau']} {k.get('ci95')}; "
          f"learned only (n={kl['n']}) {kl['tau']} {kl.get('ci95')}; "
          f"mean |Δf1| {doc['mean_abs_f1_diff']}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
