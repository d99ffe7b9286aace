"""Markdown tables of the benchmark records (benchmarks/results/*.json), one renderer per kind of
record: the docs quote these, so no number in a table is typed by hand."""

from __future__ import annotations

import json
import statistics


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
    all_seeds = bool(tt) and all("mean_trials_all_seeds" in n for n in tt["per_strategy"].values())
    if tt:
        head.append(f"trials to {tt['variant']}'s HV ({tt['target_hv']:.4f}): "
                    + ("mean over all seeds, unreached = budget (reached/seeds)" if all_seeds else "mean (reached/seeds)"))
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
            if all_seeds:
                m = ("≥ " if n["censored_at_budget"] else "") + f"{n['mean_trials_all_seeds']}"
            else:
                m = "—" if n["mean_trials_if_reached"] is None else f"{n['mean_trials_if_reached']}"
            row.append(f"{m} ({n['reached']}/{n['n']})")
        row += [tau, f"{p['train_s_mean']:.0f}", f"{p['overhead_s_mean']:.2f}"]
        lines.append("| " + " | ".join(row) + " |")
    wr = {n: p["surrogate_tau_within_runs"] for n, p in s["per_strategy"].items()
          if (p.get("surrogate_tau_within_runs") or {}).get("comparable")}
    if wr:
        lines += ["", "Surrogate τ over every predict-before-train pair, each compared only with pairs of its own run: "
                  + "; ".join(f"{n} {w['tau']:+.2f} ({w['concordant']} of {w['comparable']} comparable concordant, "
                              f"{w['runs']} runs, sign test p {w['sign_test_p']})" for n, w in wr.items()) + "."]
    st = s.get("stated_tests")
    if st and "per_variant" in st:
        pl = st["plan"]
        lines += ["", f"Stated before the run: one-sided Mann–Whitney U, each variant's final HV {pl['alternative']} than "
                      f"{pl['control']}'s, {pl['correction'].capitalize()}-corrected, family-wise α {pl['alpha']}; power by "
                      f"resampling the observed final HVs at α/m = {st['bonferroni_level_for_power']:.4f} (a lower bound).", "",
                  f"| variant vs {pl['control']} | seeds | mean HV difference | A12 | p | p (Holm) | rejects | power | seeds for {pl['power_target']:.0%} power |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, t in st["per_variant"].items():
            need = "> 100" if t["seeds_for_power"] is None else str(t["seeds_for_power"])
            lines.append(f"| {name} | {t['n']} | {t['mean_diff']:+.4f} | {t['a12']:.2f} | {t['p']:.4f} | {t['p_adjusted']:.4f} "
                         f"| {'yes' if t['reject'] else 'no'} | {t['power']:.2f} | {need} |")
    lines += ["", "| Mann–Whitney U (two-sided, final HV; descriptive, not the stated tests) | U | p |", "|---|---|---|"]
    for pair, t in s["mann_whitney_u"].items():
        lines.append(f"| {pair} | {t['U']} | {t['p']} |")
    if s.get("best"):
        lines.append(f"\nBest mean final HV: {s['best']}.")
    if tt:
        lines += ["", f"Trials to reach {tt['target']} ({tt['target_hv']:.4f}), per seed (— = not reached):", "",
                  "| variant | trials per seed |", "|---|---|"]
        for name, n in tt["per_strategy"].items():
            lines.append(f"| {name} | {', '.join('—' if h is None else str(h) for h in n['trials_to_target'])} |")
    pt = s.get("paired_trials_to_target")
    if pt:
        lines += ["", f"Paired by seed: trials to reach the same seed's {pt['variant']} final HV, against the trials "
                      f"{pt['variant']} needs to reach it itself (unreached = budget; ratio of the sums):", "",
                  "| variant | trials per seed (— = not reached) | sum | target's sum | ratio |", "|---|---|---|---|---|"]
        for name, n in pt["per_strategy"].items():
            t = ", ".join("—" if h is None else str(h) for h in n["trials"])
            lines.append(f"| {name} | {t} | {n['sum_trials']} | {n['sum_target_trials']} | {n['ratio']} |")
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


def whole_job(doc: dict) -> str:
    """whole_job: the run's test scores, its stage times and the issue's targets."""
    t, c, r = doc["test"], doc["chosen"], doc["retrain"]
    lines = ["| class | test Dice (mean ± std) | HD95 mm (mean ± std) |", "|---|---|---|"]
    for name, v in t["classes"].items():
        lines.append(f"| {name} | {v['dice']:.4f} ± {v['dice_std']:.4f} | {v['hd95_mm']:.2f} ± {v['hd95_std']:.2f} |")
    lines.append(f"| **mean** | **{t['mean_dice']:.4f}** | {t['mean_hd95_mm']:.2f} |")
    ci = t.get("mean_dice_ci") or {}
    if ci:
        lines.append(f"\nThe mean over these {ci['n_cases']} cases, {ci['level']:.0%} bootstrap interval: "
                     f"{ci['low']:.4f}–{ci['high']:.4f} (per-case std {ci['per_case_std']:.4f}).")
    stages = doc.get("stage_seconds") or {}
    lines += ["", "| " + " | ".join(stages) + " | total |", "|" + "---|" * (len(stages) + 1),
              "| " + " | ".join(f"{v / 60:.1f} min" for v in stages.values()) + f" | **{(doc['total_s'] or 0) / 60:.1f} min** |"]
    s = doc["search"]
    curve = r.get("curve") or {}
    lines.append(f"\nChosen ({c['pick']}): trial {c['trial_id']}, {c['n_params']:,} parameters, genome `{json.dumps(c['genome'])}`. "
                 f"Search: {s['strategy']}, {s['n_done']} trials done, {s['n_failed']} failed, front of {s['front_size']}, "
                 f"trial budget {s['trial_budget'][0]} × {s['trial_budget'][1]} steps at batch {s['trial_budget'][2]}. "
                 f"Retrain: {r['budget'][0]} × {r['budget'][1]} steps, best epoch {r['e_max']} of {r['epochs_run']}, "
                 f"monitor Dice {r['monitor_dice']:.4f} on {r['monitor_cases']} "
                 f"{'held-out' if r['monitor_held_out'] else 'TRAINING'} case(s); the running best last rose by more than "
                 f"{curve.get('plateau_tol')} at epoch {curve.get('plateau_epoch')} (gain over the last half "
                 f"{curve.get('gain_last_half')}). Test: {t['n_cases']} cases, TTA {'on' if t['tta'] else 'off'}.")
    lines += ["", "| target | value | met |", "|---|---|---|"]
    for name, v in doc["targets"].items():
        value = v.get("value", f"NAS {v.get('nas')} vs DynUNet {v.get('dynunet')}, {v.get('param_ratio')}× fewer parameters")
        lines.append(f"| {name} | {value} | {'yes' if v['met'] else '**no**'} |")
    return "\n".join(lines)


def spread(v: dict) -> str:
    """' ± std' over the seeds, or a plain '(one seed)' where there is no spread to show."""
    return f" ± {v['test_mean_dice_std']:.4f}" if v["n_seeds"] > 1 else " (one seed)"


def whole_job_peers(doc: dict) -> str:
    """whole_job_peers: every network trained for the retrain's CPU seconds, scored on the run's test split."""
    lines = ["| network | params | seeds | epochs | train s | test Dice (mean ± std) | HD95 mm |", "|---|---|---|---|---|---|---|"]
    for name, v in doc["results"].items():
        if v.get("test_mean_dice") is None:
            continue
        epochs = sorted({str(r.get("epochs")) for r in v["runs"]})
        lines.append(f"| {name} | {v['n_params']:,} | {v['n_seeds']} | {'/'.join(epochs)} | {v['train_s']:.0f} | "
                     f"{v['test_mean_dice']:.4f}{spread(v)} | {v['test_mean_hd95_mm']:.2f} |")
    lines.append(f"\nTarget: {doc['run_model_seconds']:.0f} s of training each (the run's retrain), "
                 f"{doc['n_trained_cases']} trained cases, {doc['n_test']} test cases, patch {doc['patch_size']}; "
                 f"MONAI peers at AdamW lr {doc['peer_lr']}.")
    return "\n".join(lines)


def proxy_fidelity(doc: dict) -> str:
    """proxy_fidelity: each genome's search proxy beside its retrained test Dice, and Kendall tau."""
    lines = ["| trial | params | search f1 | search val Dice | retrained test Dice | train s |", "|---|---|---|---|---|---|"]
    for e in sorted(doc["entries"], key=lambda e: e["f1"]):
        svd = "—" if e.get("search_val_dice") is None else f"{e['search_val_dice']:.4f}"
        td = "failed" if e.get("test_mean_dice") is None else f"{e['test_mean_dice']:.4f}"
        lines.append(f"| {e['trial_id']} | {(e.get('n_params') or 0):,} | {e['f1']:.4f} | {svd} | {td} | {e['train_s']:.0f} |")
    k = doc.get("kendall", {})
    if k.get("neg_f1"):
        lines.append(f"\nKendall τ over {k['n']} genomes: −f1 vs test Dice {k['neg_f1']['tau']} (p {k['neg_f1']['p']}), "
                     f"search val Dice vs test Dice {k['search_val_dice']['tau']} (p {k['search_val_dice']['p']}); "
                     f"bar τ ≥ {k['bar']}: {'met' if k['met'] else '**not met**'}. Retrained {doc['budget'][0]} × "
                     f"{doc['budget'][1]} steps (final retrain {doc['final_retrain_budget'][0]} × "
                     f"{doc['final_retrain_budget'][1]}); search trials {doc['trial_budget'][0]} × {doc['trial_budget'][1]}.")
    if k.get("learned_only"):
        lo = k["learned_only"]
        lines.append(f"Without the trials that learned nothing in the search (validation Dice 0): τ over {lo['n']} genomes "
                     f"−f1 {_tau(lo, 'neg_f1')}, search val Dice {_tau(lo, 'search_val_dice')}.")
    return "\n".join(lines)


def _tau(k: dict, name: str) -> str:
    """One Kendall tau of a `proxy_fidelity.taus` block as 'tau (p p)', or a dash where it has none."""
    return "—" if not k.get(name) else f"{k[name]['tau']} (p {k[name]['p']})"


def proxy_budget(doc: dict) -> str:
    """proxy_budget: Kendall tau of the trial proxy against the retrained test Dice, per trial budget."""
    def row(label: str, steps: int, seconds: str, k: dict) -> str:
        return (f"| {label} | {steps} | {seconds} | {_tau(k, 'neg_f1')} | {_tau(k, 'search_val_dice')} | "
                f"{_tau(k.get('learned_only') or {}, 'neg_f1')} | {'yes' if k.get('met') else 'no'} |")

    lines = ["| trial budget | steps | seconds (all genomes) | τ −f1 | τ val Dice | τ −f1 without untrained | bar met |",
             "|---|---|---|---|---|---|---|"]
    e, i = doc["search_budget"]
    lines.append(row(f"{e}x{i} (the search's)", e * i, "—", doc.get("search_kendall") or {}))
    for key, v in sorted(doc["budgets"].items(), key=lambda kv: kv[1]["steps"]):
        lines.append(row(key, v["steps"], f"{v['seconds']:.0f}", v["kendall"]))
    lines.append(f"\nReference: the retrained test Dice of {doc['fidelity']} ({doc['fidelity_budget'][0]} × "
                 f"{doc['fidelity_budget'][1]} steps); cheapest budget reaching τ ≥ {doc['bar']}: "
                 f"{doc['cheapest_meeting_bar'] or 'none measured'}.")
    return "\n".join(lines)


def tta_gain(doc: dict) -> str:
    """tta_gain: the run's own model on its test split, plain and averaged over the 8 mirrorings."""
    classes = list(doc["plain"]["classes"])
    lines = ["| prediction | " + " | ".join(f"{c} Dice" for c in classes) + " | mean Dice | "
             + " | ".join(f"{c} HD95 mm" for c in classes) + " | s / case |",
             "|---" * (2 * len(classes) + 3) + "|"]
    for name in ("plain", "mirror_tta"):
        v = doc[name]
        lines.append(f"| {name} | " + " | ".join(f"{v['classes'][c]['dice']:.4f}" for c in classes)
                     + f" | {v['mean_dice']:.4f} | " + " | ".join(f"{v['classes'][c]['hd95_mm']:.2f}" for c in classes)
                     + f" | {v['seconds_per_case']} |")
    lines.append(f"\nGain of mirror TTA: {doc['gain']['mean_dice']:+.4f} mean Dice over {doc['n_cases']} test cases.")
    return "\n".join(lines)


def retrain_ablation(doc: dict) -> str:
    """retrain_ablation: the chosen network retrained with one change at a time, against the `base` row.

    `vs base` compares with `base` at the same training seed (one network's seeds can spread as
    much as a variant's effect, so unpaired differences mislead); variants with more than one seed
    also get their mean ± std over seeds.
    """
    rows = doc["rows"]
    done = [r for r in rows if r.get("test_mean_dice") is not None]
    base = {r["seed"]: r["test_mean_dice"] for r in done if r["variant"] == "base"}
    classes = list(next((r["test"] for r in rows if r.get("test")), {}))
    lines = [f"| variant | seed | changes | params | steps (epochs) | ms / step | best epoch | monitor Dice | test Dice "
             f"{' / '.join(classes)} | mean | vs base | HD95 mm |", "|---" * 12 + "|"]
    for r in rows:
        if r.get("test_mean_dice") is None:
            lines.append(f"| {r['variant']} | {r['seed']} | {r['why']} | | | | | | {r['status']}: {r.get('error')} | | | |")
            continue
        changes = list(r["overrides"])
        if r["genome"] != doc["chosen"]["genome"]:
            changes.append(f"genome {r['describe']}")
        changes = "; ".join(changes) or "—"
        budget = "seconds" if r.get("target_s") else "steps"
        ref = base.get(r["seed"])
        delta = "" if ref is None or r["variant"] == "base" else f"{r['test_mean_dice'] - ref:+.4f}"
        lines.append(f"| {r['variant']} | {r['seed']} | {changes} | {r['n_params']:,} | {r['steps']:,} ({r['epochs_run']}, {budget}) | "
                     f"{r['step_ms']:.0f} | {r['e_max']} of {r['epochs_run']} | {r['val_dice']:.4f} | "
                     + " / ".join(f"{r['test'][c]['dice']:.3f}" for c in classes)
                     + f" | {r['test_mean_dice']:.4f} | {delta} | {r['test_mean_hd95_mm']:.2f} |")
    by_variant: dict[str, list[float]] = {}
    for r in done:
        by_variant.setdefault(r["variant"], []).append(r["test_mean_dice"])
    for name, values in by_variant.items():
        if len(values) > 1:
            lines.append(f"\n{name}: test Dice {statistics.mean(values):.4f} ± {statistics.stdev(values):.4f} "
                         f"over {len(values)} seeds.")
    lines.append(f"\nThe record's own retrain: test Dice {doc['record_test_mean_dice']:.4f}; seconds budget "
                 f"{doc['seconds']:.0f} s.")
    for name, iv in (doc.get("paired_vs_base") or {}).items():
        lines.append(f"\n{name} − base, paired per case (seeds {', '.join(map(str, iv['seeds']))}): mean Dice "
                     f"{iv['mean']:+.4f}, {iv['level']:.0%} bootstrap interval [{iv['low']:+.4f}, {iv['high']:+.4f}] "
                     f"over {iv['n_cases']} cases.")
    return "\n".join(lines)


TABLES = {"bench_peers": peers, "bench_search": search, "bench_throughput": throughput, "bench_cells": cells,
          "learning_curve": learning_curve, "whole_job": whole_job, "whole_job_peers": whole_job_peers,
          "proxy_fidelity": proxy_fidelity, "tta_gain": tta_gain, "proxy_budget": proxy_budget,
          "retrain_ablation": retrain_ablation}
