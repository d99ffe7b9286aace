"""Does the 2D / pseudo-3D mix matter? The whole job with the space restricted (issue 26).

    python scripts/space_ablation.py configs/acdc_cpu.yaml --spaces full,3d,2d --seeds 0,1 \
        --work runs/space_ablation --out benchmarks/results/acdc_space_ablation.json

Each (space, seed) is one `medseg-nas run` of the config (search, retrain of its pick, evaluate on
the run's test split) into `--work/<space>_s<seed>`, with `space.ops` restricted and
`search.seed` set; everything else — data, split (the config's split_seed), trial budget, retrain
budget and training seed — is the config's, so the spaces differ only in the operations the
search may use. Spaces (identity is in all; conv3d_1 is pointwise, so it is in both restricted
spaces: it mixes channels, never neighbouring voxels):
    full  every op of the config          3d  conv3d_1/3/5          2d  conv3d_1, conv2d_3/5/7

The answer is stated before the runs: the 2D / pseudo-3D operations earn their place on this data
if the 3D-only space's mean foreground test Dice is below the full space's with the 95 %
percentile-bootstrap interval (10,000 resamples over test cases) of the paired per-case
difference (3d - full; each case's Dice averaged over seeds first) entirely below 0; an interval
containing 0 is "no difference shown at this budget", whichever way the means point. The same
interval is given per class and for 2d - full.

Resumable: a (space, seed) whose run directory already has best/summary.json is read, not rerun;
the record is rewritten after every run.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from medseg_nas.jsonio import atomic_write

SPACES = {
    "full": None,  # the config's own ops
    "3d": ["conv3d_1", "conv3d_3", "conv3d_5", "identity"],
    "2d": ["conv3d_1", "conv2d_3", "conv2d_5", "conv2d_7", "identity"],
}
RESAMPLES = 10_000
LEVEL = 0.95


def per_case_dice(summary: dict) -> dict[str, dict[str, float]]:
    """{case id: {class name: Dice, ..., "mean": mean foreground Dice}} from best/summary.json."""
    out = {}
    for case in summary["cases"]:
        d = {name: float(v["dice"]) for name, v in case["classes"].items()}
        d["mean"] = float(case["mean_dice"])
        out[str(case["id"])] = d
    return out


def paired_interval(diffs: np.ndarray, seed: int = 0) -> dict:
    """Mean of per-case differences and its percentile-bootstrap interval over cases."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diffs), size=(RESAMPLES, len(diffs)))
    means = diffs[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return {"mean": round(float(diffs.mean()), 4), "low": round(float(lo), 4), "high": round(float(hi), 4),
            "n_cases": int(len(diffs)), "level": LEVEL, "resamples": RESAMPLES}


def compare(runs: dict[str, dict[int, dict]], against: str = "full") -> dict:
    """Paired per-case differences (space - `against`) per class, Dice averaged over each space's
    seeds first; only the cases every run scored, so the pairs are the same test cases."""
    if against not in runs or not runs[against]:
        return {}
    case_sets = [set(d) for seeds in runs.values() for d in seeds.values()]
    cases = sorted(set.intersection(*case_sets))
    classes = sorted({k for seeds in runs.values() for d in seeds.values() for c in d.values() for k in c})

    def seed_mean(space: str) -> np.ndarray:  # cases x classes
        return np.mean([[[d[c][k] for k in classes] for c in cases] for d in runs[space].values()], axis=0)

    base = seed_mean(against)
    out = {}
    for space in runs:
        if space == against or not runs[space]:
            continue
        diff = seed_mean(space) - base
        out[f"{space}-{against}"] = {k: paired_interval(diff[:, j]) for j, k in enumerate(classes)}
        out[f"{space}-{against}"]["verdict"] = verdict(out[f"{space}-{against}"]["mean"])
    return out


def verdict(iv: dict) -> str:
    if iv["high"] < 0:
        return "lower than full: the interval excludes 0"
    if iv["low"] > 0:
        return "higher than full: the interval excludes 0"
    return "no difference shown: the interval contains 0"


def run_one(config: str, space: str, seed: int, work: Path) -> Path:
    run_dir = work / f"{space}_s{seed}"
    if (run_dir / "best" / "summary.json").is_file():
        return run_dir
    sets = [f"search.seed={seed}"]
    if SPACES[space] is not None:
        sets.append("space.ops=[" + ",".join(SPACES[space]) + "]")
    cmd = [sys.executable, "-m", "medseg_nas", "run", config, "--run-dir", str(run_dir)]
    for s in sets:
        cmd += ["--set", s]
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return run_dir


def record_of(run_dir: Path) -> dict:
    summary = json.loads((run_dir / "best" / "summary.json").read_text())
    info = json.loads((run_dir / "best" / "retrain.json").read_text())
    times = json.loads((run_dir / "stage_times.json").read_text())["runs"] if (run_dir / "stage_times.json").is_file() else []
    return {"run_dir": str(run_dir), "genome": info["genome"], "n_params": info.get("n_params"),
            "test_mean_dice": round(summary["mean_dice"], 4),
            "test_classes": {n: {"dice": round(c["dice"]["mean"], 4), "hd95_mm": round(c["hd95"]["mean"], 2)}
                             for n, c in summary["classes"].items()},
            "total_s": round(sum(t["total_s"] for t in times), 1) if times else None,
            "per_case": per_case_dice(summary)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--spaces", default="full,3d,2d")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--work", default="runs/space_ablation")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    spaces = [s for s in args.spaces.split(",") if s]
    unknown = [s for s in spaces if s not in SPACES]
    if unknown:
        raise SystemExit(f"--spaces: unknown {unknown} (known: {', '.join(SPACES)})")
    seeds = [int(s) for s in args.seeds.split(",") if s]
    out, work = Path(args.out), Path(args.work)
    doc = {"benchmark": "space_ablation", "config": args.config, "spaces": {s: SPACES[s] for s in spaces},
           "seeds": seeds, "rule": __doc__.split("The answer is stated before the runs: ")[1].split("\n\n")[0],
           "machine": {"python": platform.python_version()}, "runs": {}, "comparisons": {}}
    for seed in seeds:
        for space in spaces:
            t = time.time()
            run_dir = run_one(args.config, space, seed, work)
            doc["runs"].setdefault(space, {})[str(seed)] = record_of(run_dir)
            print(f"{space} seed {seed}: test mean Dice {doc['runs'][space][str(seed)]['test_mean_dice']:.4f} "
                  f"({time.time() - t:.0f} s)", flush=True)
            runs = {s: {int(k): v["per_case"] for k, v in by_seed.items()} for s, by_seed in doc["runs"].items()}
            doc["comparisons"] = compare(runs)
            atomic_write(out, json.dumps(doc, indent=2))
    print(json.dumps(doc["comparisons"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
