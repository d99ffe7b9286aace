"""The cell benchmark's rows and its paired emonas-vs-residual statistic, apart from the command
line that trains them (scripts/bench_cells.py)."""

from __future__ import annotations

import fnmatch

import numpy as np

from medseg_nas.results import TrialStatus
from medseg_nas.space import PUBLISHED_GENOMES


def runs_to_train(args) -> list[tuple[str, str, str, object]]:
    """(row name, genome name, cell, genome) for every network of the comparison."""
    wanted = [w for w in args.nets.split(",") if w] or None
    rows = []
    for lr in [x for x in args.genome_lr.split(",") if x]:
        for name, g in PUBLISHED_GENOMES.items():
            g = g.with_value("n_f", args.n_f)
            tag = ""
            if lr != "published":
                g = g.with_value("lr", float(lr))
                tag = f"_lr{float(lr):g}"
            for cell in args.cells.split(","):
                row = f"{name}_{cell}{tag}"
                if wanted is None or any(fnmatch.fnmatchcase(row, w) for w in wanted):
                    rows.append((row, name, cell, g))
    return rows


def compare(results: dict) -> dict:
    """Pair emonas with residual on each (genome, lr, seed): per-genome and overall differences."""
    per, pairs = {}, []
    for row, r in results.items():
        if r["cell"] != "emonas":
            continue
        other = results.get(row.replace("_emonas", "_residual", 1))
        if other is None:
            continue
        a = {x["seed"]: x.get("test_mean_dice") for x in r["runs"]}
        b = {x["seed"]: x.get("test_mean_dice") for x in other["runs"]}
        seeds = sorted(s for s in a if s in b and a[s] is not None and b[s] is not None)
        if not seeds:
            continue
        diffs = [a[s] - b[s] for s in seeds]
        pairs += diffs
        key = row.replace("_emonas", "", 1)
        per[key] = {
            "seeds": seeds,
            "emonas": {"mean": round(float(np.mean([a[s] for s in seeds])), 4), "std": round(float(np.std([a[s] for s in seeds])), 4)},
            "residual": {"mean": round(float(np.mean([b[s] for s in seeds])), 4), "std": round(float(np.std([b[s] for s in seeds])), 4)},
            "diff_mean": round(float(np.mean(diffs)), 4),
            "n_params": {"emonas": r["n_params"], "residual": other["n_params"]},
        }
    out = {"per_genome": per, "n_pairs": len(pairs)}
    if pairs:
        out.update({"mean_diff_emonas_minus_residual": round(float(np.mean(pairs)), 4),
                    "emonas_wins": int(sum(d > 0 for d in pairs)), "residual_wins": int(sum(d < 0 for d in pairs)),
                    "ties": int(sum(d == 0 for d in pairs))})
        out["wilcoxon_p"] = None
        if len(pairs) >= 2 and any(d != 0 for d in pairs):
            from scipy.stats import wilcoxon

            out["wilcoxon_p"] = round(float(wilcoxon(pairs).pvalue), 4)
        m = out["mean_diff_emonas_minus_residual"]
        out["better"] = "emonas" if m > 0 else "residual" if m < 0 else "tie"
    return out


def network_summary(name: str, cell: str, g, runs: list[dict]) -> dict:
    """One row of the record: the genome and cell, its seeds' runs, and their means when any trained."""
    done = [x for x in runs if x["status"] == TrialStatus.DONE]
    summary = {"genome_name": name, "cell": cell, "lr": g.lr, "genome": g.to_dict(), "describe": g.describe(),
               "n_params": runs[0]["n_params"], "runs": runs}
    if done:
        dice = [x["test_mean_dice"] for x in done]
        summary.update({"test_mean_dice": round(float(np.mean(dice)), 4), "test_dice_std": round(float(np.std(dice)), 4),
                        "test_mean_hd95_mm": round(float(np.mean([x["test_mean_hd95_mm"] for x in done])), 2),
                        "train_s": round(float(np.mean([x["train_s"] for x in done])), 1)})
    return summary
