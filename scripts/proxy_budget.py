"""Which trial budget would rank networks as the retrain does? (issue 13: "if tau < 0.5, find the
cheapest trial budget that reaches tau >= 0.5")

    python scripts/proxy_budget.py runs/hippocampus_cpu \
        --fidelity benchmarks/results/hippocampus_proxy_fidelity.json --budgets 4x50,8x50 \
        --out benchmarks/results/hippocampus_proxy_budget.json

The genomes and their reference (retrained test Dice) come from a `scripts/proxy_fidelity.py`
record of the same run. Each genome is trained again as a search trial would be (the run's
config, search split and trial seed, `Trainer.fit`), but for `epochs x iters` steps per budget;
its f1 is computed by the search's own `compute_objectives`. Kendall tau of -f1 (and of the
trial's validation Dice) against the reference, per budget, next to the budget's seconds, and
the cheapest budget that reaches the bar. The search's own budget is the fidelity record's tau.

A budget EPOCHSxITERS@K is a successive-halving rung (search.fidelity): the schedule spans EPOCHS
epochs but the trial stops after epoch K (`Trainer.fit(until=K)`), as a rung-K trial does; its
tau says how well that rung ranks, i.e. whether promoting on it can work.

Resumable: each (budget, genome) result is written to `--out` as it finishes; a rerun skips them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from medseg_nas.jsonio import atomic_write
from medseg_nas.nas.problem import SearchProblem
from medseg_nas.rundir import RunDir
from medseg_nas.search.objectives import compute_objectives
from medseg_nas.space import Genome
from medseg_nas.train import Trainer
from medseg_nas.bench.stats import TAU_BAR, taus


def parse_budget(part: str) -> tuple[int, int, int]:
    """'4x50' -> (4, 50, 4); '4x50@1' -> (4, 50, 1): epochs, iters, epoch the trial stops after."""
    try:
        budget, _, until = part.lower().partition("@")
        e, i = (int(v) for v in budget.split("x"))
        k = int(until) if until else e
    except ValueError:
        raise SystemExit(f"--budgets: {part!r} is not EPOCHSxITERS or EPOCHSxITERS@K (e.g. 4x50, 4x50@1)") from None
    if e < 1 or i < 1 or not 1 <= k <= e:
        raise SystemExit(f"--budgets: {part!r} must have epochs and iters >= 1 and 1 <= K <= epochs")
    return e, i, k


def parse_budgets(text: str) -> list[tuple[int, int, int]]:
    return [parse_budget(p) for p in filter(None, (p.strip() for p in text.split(",")))]


def search_bundle(cfg, run: RunDir):
    """The search's data (its split and plan), loaded as a search worker loads it for a trial."""
    data = SearchProblem.build(cfg, run.path).worker_data()
    return data.bundle, data.plan


def summarise(doc: dict, reference: dict) -> None:
    """Per budget: tau against the reference, seconds; the cheapest budget meeting the bar."""
    budgets = {}
    for key, entries in doc["runs"].items():
        rows = [{**e, "test_mean_dice": reference[e["trial_id"]]} for e in entries if e.get("f1") is not None]
        e, i, k = parse_budget(key)
        budgets[key] = {"epochs": e, "iters": i, "until": k, "steps": k * i, "n": len(rows), "failed": len(entries) - len(rows),
                        "seconds": round(sum(x["seconds"] for x in entries), 1), "kendall": taus(rows)}
    doc["budgets"] = budgets
    complete = [(v["seconds"], k) for k, v in budgets.items() if v["n"] == len(reference) and v["kendall"].get("met")]
    doc["cheapest_meeting_bar"] = min(complete)[1] if complete else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("--fidelity", required=True, help="scripts/proxy_fidelity.py record of the same run")
    ap.add_argument("--budgets", required=True, help="comma-separated EPOCHSxITERS, e.g. 4x50,8x50")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    run = RunDir(args.run_dir)
    fid = json.loads(Path(args.fidelity).read_text())
    if fid.get("run_dir") != str(run.path):
        raise SystemExit(f"{args.fidelity} was measured on {fid.get('run_dir')}, not {run.path}")
    reference = {e["trial_id"]: e["test_mean_dice"] for e in fid["entries"] if e.get("test_mean_dice") is not None}
    genomes = {e["trial_id"]: e["genome"] for e in fid["entries"] if e["trial_id"] in reference}
    cfg = run.config()
    seed = int(cfg.train.seed)
    out_path = Path(args.out)
    doc = json.loads(out_path.read_text()) if out_path.is_file() else {}
    if doc and doc.get("fidelity_budget") != fid["budget"]:
        raise SystemExit(f"{out_path} was measured against a {doc.get('fidelity_budget')} retrain, not {fid['budget']}")
    doc = doc or {"benchmark": "proxy_budget", "run_dir": str(run.path), "fidelity": str(args.fidelity),
                  "fidelity_budget": fid["budget"], "search_budget": fid["trial_budget"],
                  "search_kendall": fid.get("kendall"), "seed": seed, "bar": TAU_BAR,
                  "torch_threads": torch.get_num_threads(), "runs": {}}
    bundle, plan = search_bundle(cfg, run)
    for epochs, iters, until in parse_budgets(args.budgets):
        key = f"{epochs}x{iters}" + (f"@{until}" if until != epochs else "")
        entries = doc["runs"].setdefault(key, [])
        done = {e["trial_id"] for e in entries}
        for k, (tid, gdict) in enumerate(sorted(genomes.items()), start=1):
            if tid in done:
                continue
            if hasattr(bundle, "reseed"):
                bundle.reseed(seed)
            trainer = Trainer(cfg.train, bundle, plan, device=args.device, progress=False, cell=cfg.space.cell)
            t0 = time.perf_counter()
            result = trainer.fit(Genome.from_dict(gdict), seed=seed, epochs=epochs, iters_per_epoch=iters, until=until)
            entry = {"trial_id": tid, "seconds": round(time.perf_counter() - t0, 1), "status": str(result.status),
                     "n_params": result.n_params, "f1": None, "search_val_dice": result.val_dice}
            try:
                entry["f1"] = compute_objectives(result, cfg.objectives)[0]
            except ValueError as exc:
                entry["error"] = str(exc)
            entries.append(entry)
            summarise(doc, reference)
            atomic_write(out_path, json.dumps(doc, indent=2, default=str))
            f1 = "failed" if entry["f1"] is None else f"{entry['f1']:.4f}"
            print(f"[{key} {k}/{len(genomes)}] trial {tid}: f1 {f1}, reference {reference[tid]:.4f} "
                  f"({entry['seconds']:.0f} s)", flush=True)
    summarise(doc, reference)
    atomic_write(out_path, json.dumps(doc, indent=2, default=str))
    print(json.dumps({k: {"tau_neg_f1": v["kendall"].get("neg_f1", {}).get("tau"), "seconds": v["seconds"]}
                      for k, v in doc["budgets"].items()}, indent=2))
    print(f"cheapest budget reaching tau >= {TAU_BAR}: {doc['cheapest_meeting_bar']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
