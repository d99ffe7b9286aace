"""Do two trial caches of the same proxy rank genomes alike? (issue 27, item 5)

Why: the strategy comparison's trials ran on a GPU (AMP, other kernels: another problem, so the
CUDA cache never answers a CPU trial), while the proxy's fidelity against a 400-step retrain was
measured on CPU. Where the same genome was trained under both, the two f1 values say whether the
GPU proxy orders genomes as the measured CPU proxy does. Genomes are matched by their JSON; each
file must hold one budget (the first line for a genome wins, as in every cache reader).

    python scripts/cache_agreement.py benchmarks/cache/search_hippocampus_4x50_cpu.jsonl \\
        benchmarks/cache/search_hippocampus_4x50_cuda.jsonl --out benchmarks/results/hippocampus_proxy_cpu_vs_cuda.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau


def read_cache(path: Path) -> dict[str, dict]:
    """Finished trials by genome (sorted-key JSON), first line wins; one budget per file."""
    out: dict[str, dict] = {}
    budgets = set()
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            raise SystemExit(f"{path}: line {n} is not JSON")
        budgets.add(e.get("budget"))
        g = json.dumps(json.loads(e["genome"]) if isinstance(e["genome"], str) else e["genome"], sort_keys=True)
        if e.get("status") == "done" and e.get("f1") is not None:
            out.setdefault(g, e)
    if len(budgets) > 1:
        raise SystemExit(f"{path}: holds {len(budgets)} budgets ({sorted(map(str, budgets))}); compare one proxy at a time")
    return out


def tau_with_interval(a: np.ndarray, b: np.ndarray, resamples: int = 10000, seed: int = 0) -> dict:
    """Kendall τ-b and a 95 % percentile bootstrap over genomes (resamples with < 3 distinct pairs skipped)."""
    if len(a) < 3:
        return {"n": len(a), "tau": None}
    tau = float(kendalltau(a, b).statistic)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(resamples):
        i = rng.integers(0, len(a), len(a))
        if len(set(i)) >= 3:
            t = kendalltau(a[i], b[i]).statistic
            if np.isfinite(t):
                boot.append(t)
    lo, hi = np.percentile(boot, [2.5, 97.5]) if boot else (None, None)
    return {"n": len(a), "tau": round(tau, 3), "low": None if lo is None else round(float(lo), 3),
            "high": None if hi is None else round(float(hi), 3), "resamples": len(boot)}


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
        "genomes": [{"genome": json.loads(g), "f1_a": round(a[g]["f1"], 5), "f1_b": round(b[g]["f1"], 5),
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
           **agreement(read_cache(Path(args.cache_a)), read_cache(Path(args.cache_b)))}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    k, kl = doc["kendall_f1"], doc["kendall_f1_learned_only"]
    print(f"{doc['n_common']} genomes in both: τ(f1) {k['tau']} [{k.get('low')}, {k.get('high')}]; "
          f"learned only (n={kl['n']}) {kl['tau']} [{kl.get('low')}, {kl.get('high')}]; "
          f"mean |Δf1| {doc['mean_abs_f1_diff']}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
