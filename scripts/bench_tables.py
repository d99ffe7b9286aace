"""Markdown tables for docs/BENCHMARKS.md from benchmarks/results/*.json (no numbers typed by hand).

    python scripts/bench_tables.py benchmarks/results/peers_mni152_cpu.json benchmarks/results/search_train_cpu.json ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def peers(doc: dict) -> str:
    res = doc["results"]
    classes = next((list(r["test"]) for r in res.values() if r.get("test")), [])
    head = ["network", "params", "test Dice mean"] + [f"Dice {c}" for c in classes] + [f"HD95 {c} (mm)" for c in classes]
    head += ["train s", "infer ms/vol", "Dice − DynUNet", "DynUNet params ÷", "claim"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in res.items():
        if r.get("test") is None:
            lines.append(f"| {name} | {r.get('n_params')} | failed: {r['runs'][0].get('error')} |")
            continue
        row = [f"`{name}`", f"{r['n_params'] / 1e6:.3f} M", f"{r['test_mean_dice']:.3f}"]
        row += [f"{r['test'][c]['dice']:.3f}" for c in classes] + [f"{r['test'][c]['hd95_mm']:.2f}" for c in classes]
        row += [f"{r['train_s']:.0f}", f"{r['infer_ms_per_volume']:.0f}",
                f"{r.get('dice_minus_dynunet', float('nan')):+.3f}", f"{r.get('param_ratio_dynunet', float('nan')):.1f}×",
                "yes" if r.get("claim_holds") else "no"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _variant(name: str, p: dict) -> str:
    over = p.get("overrides") or []
    base = p.get("strategy", name)
    return f"{name} (`{base}`" + "".join(f", `{o}`" for o in over) + ")" if (over or base != name) else name


def search(doc: dict) -> str:
    s = doc["summary"]
    tt = s.get("trials_to_target")
    head = ["variant", "seeds", "trials", "final HV mean ± std"]
    if tt:
        head.append(f"trials to {tt['variant']}'s HV ({tt['target_hv']:.4f}): mean (reached/seeds)")
    head += ["surrogate τ after learning (mean ± std, n)", "train s / run", "strategy overhead s / run"]
    lines = []
    if "seed_smallest" in doc:
        lines += [f"First batch: `search.seed_smallest: {str(doc['seed_smallest']).lower()}` for every variant.", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, p in s["per_strategy"].items():
        if p["surrogate_tau_mean"] is None:
            tau = "—"
        else:
            sd = p.get("surrogate_tau_std")
            tau = f"{p['surrogate_tau_mean']:.2f}" + (f" ± {sd:.2f}" if sd is not None else "") + f" (n={p['surrogate_tau_n']})"
        row = [_variant(name, p), str(p["n_seeds"]), f"{p['trials_mean']:.0f}", f"{p['final_hv_mean']:.4f} ± {p['final_hv_std']:.4f}"]
        if tt:
            n = tt["per_strategy"][name]
            m = "—" if n["mean_trials_if_reached"] is None else f"{n['mean_trials_if_reached']}"
            row.append(f"{m} ({n['reached']}/{n['n']})")
        row += [tau, f"{p['train_s_mean']:.0f}", f"{p['overhead_s_mean']:.2f}"]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "| Mann–Whitney U (two-sided, final HV) | U | p |", "|---|---|---|"]
    for pair, t in s["mann_whitney_u"].items():
        lines.append(f"| {pair} | {t['U']} | {t['p']} |")
    if s.get("best"):
        lines.append(f"\nBest mean final HV: {s['best']}.")
    if tt:
        lines += ["", f"Trials to reach {tt['target']} ({tt['target_hv']:.4f}), per seed (— = not reached):", "",
                  "| variant | trials per seed |", "|---|---|"]
        for name, n in tt["per_strategy"].items():
            lines.append(f"| {name} | {', '.join('—' if h is None else str(h) for h in n['trials_to_target'])} |")
    sv = s.get("surrogate_savings")  # results written before the variants (issue 12)
    if sv:
        lines += ["", f"Trials to reach {sv['target']} ({sv['target_hv']:.4f}):", "",
                  "| strategy | trials per seed (— = not reached) | mean where reached |", "|---|---|---|"]
        for name, n in sv["per_strategy"].items():
            t = ", ".join("—" if h is None else str(h) for h in n["trials_to_target"])
            lines.append(f"| {name} | {t} | {n['mean_trials_if_reached']} |")
        lines.append(f"\nTrials saved by surrogate ordering (DMLS − DMLS-surrogate): {sv['trials_saved_dmls_surrogate_vs_dmls']}")
    for name, p in s["per_strategy"].items():
        if p.get("surrogate_screened_mean") is not None:
            rej = p.get("surrogate_rejected_mean")
            lines.append(f"{name} forest: {p['surrogate_screened_mean']:.0f} candidates screened, "
                         f"{'—' if rej is None else f'{rej:.0f}'} rejected without training per run (mean)")
    return "\n".join(lines)


def throughput(doc: dict) -> str:
    lines = ["| executor | trials | seconds | trials/hour |", "|---|---|---|---|"]
    for name, r in doc["results"].items():
        extra = f" (+{r['ray_startup_s']} s Ray start-up)" if "ray_startup_s" in r else ""
        lines.append(f"| {name} | {r['trials']} | {r['seconds']}{extra} | {r['trials_per_hour']} |")
    if "speedup_ray_vs_local" in doc:
        lines.append(f"\nRay ({doc['results']['ray']['workers']} workers) vs local: {doc['speedup_ray_vs_local']}× (ideal 2×)")
    return "\n".join(lines)


def cells(doc: dict) -> str:
    """bench_cells: test Dice per published genome and cell (mean ± std over seeds), paired difference."""
    c = doc.get("comparison", {})
    lines = ["| genome (lr) | params emonas / residual | test Dice emonas | test Dice residual | emonas − residual |",
             "|---|---|---|---|---|"]
    for key, r in c.get("per_genome", {}).items():
        p = r["n_params"]
        lines.append(f"| `{key}` | {p['emonas'] / 1e6:.3f} M / {p['residual'] / 1e6:.3f} M | "
                     f"{r['emonas']['mean']:.3f} ± {r['emonas']['std']:.3f} | "
                     f"{r['residual']['mean']:.3f} ± {r['residual']['std']:.3f} | {r['diff_mean']:+.3f} |")
    if c.get("n_pairs"):
        lines.append(f"\nOver {c['n_pairs']} (genome, seed) pairs: emonas − residual = "
                     f"{c['mean_diff_emonas_minus_residual']:+.4f} test Dice (emonas wins {c['emonas_wins']}, "
                     f"residual wins {c['residual_wins']}, ties {c['ties']}; Wilcoxon signed-rank p = {c['wilcoxon_p']}); "
                     f"better: **{c['better']}**. Seeds {doc['seeds']}, {doc['epochs']} epochs × {doc['iters_per_epoch']} "
                     f"iterations, batch {doc['batch_size']}, published genomes at {2 ** doc['n_f_published']} filters.")
    return "\n".join(lines)


def learning_curve(doc: dict) -> str:
    """learning_curve: validation Dice every few epochs, and where the curve flattens."""
    curve = doc["curve"]
    step = max(1, len(curve) // 12)
    shown = [r for r in curve if r["epoch"] % step == 0 or r is curve[-1]]
    lines = ["| epoch | steps | loss | train Dice | val Dice | s / epoch |", "|---|---|---|---|---|---|"]
    for r in shown:
        vd = "—" if r["val_dice"] is None else f"{r['val_dice']:.4f}"
        lines.append(f"| {r['epoch']} | {r['steps']} | {r['loss']:.3f} | {r['train_dice']:.3f} | {vd} | {r['seconds']:.0f} |")
    pl = doc.get("plateau")
    state = "finished" if doc.get("finished") else f"stopped after epoch {curve[-1]['epoch']} of {doc['epochs']}"
    lines.append(f"\n{state}; schedule for {doc['epochs']} × {doc['iters_per_epoch']} steps, batch {doc['batch_size']}, "
                 f"patch {doc['patch_size']}, {doc['n_train']} train / {doc['n_val']} val cases.")
    if pl:
        lines.append(f"Best val Dice {pl['best_val_dice']:.4f} at epoch {pl['best_epoch']}; the running best last rose by more "
                     f"than {pl['tol']} at epoch {pl['epoch']} ({pl['steps']} steps).")
    return "\n".join(lines)


TABLES = {"bench_peers": peers, "bench_search": search, "bench_throughput": throughput, "bench_cells": cells,
          "learning_curve": learning_curve}


def main(paths: list[str]) -> int:
    for p in paths:
        doc = json.loads(Path(p).read_text())
        kind = doc.get("benchmark") or ("learning_curve" if "curve" in doc else None)
        table = TABLES.get(kind)
        if table is None:  # difficulty, space and train results are quoted in prose, not tabled
            print(f"### {p}: no table for {kind!r}\n")
            continue
        print(f"### {p}\n")
        print(table(doc))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
