"""Which search strategy finds the better front for the same budget (issue 7, part 2).

SaMEA, DMLS, DMLS with surrogate-ordered neighbours (LS-PON), NSGA-II and random search, each
driven through `medseg_nas.search.make_strategy`'s ask/tell interface for the same number of
distinct trained genomes (`--budget`), with the same per-trial training budget, for several
strategy seeds. A genome a strategy asks for again is answered from that run's history and does
not count (as in the runner).

Modes
- `--mode train` (the benchmark): every trial is a real `Trainer.fit` on the MNI152-derived data
  with a deliberately tiny per-trial budget (`--spacing/--patch/--epochs/--iters`), objectives
  from `medseg_nas.search.objectives` (f1) and the exact parameter count (f2). Training on CPU is
  deterministic for a genome and a training seed (tests/test_train.py::test_deterministic_on_cpu),
  and every trial uses the same training seed (`--train-seed`), so a genome trained once answers
  every strategy and every strategy seed: results are kept in a JSON-lines cache
  (`<work-dir>/cache.jsonl`, keyed by genome and budget) and reused, also across invocations.
  "train_s" of a run is what its trials cost to train (cached or not), i.e. the wall-clock the
  run would have taken on its own; "overhead_s" is the strategy's own ask/tell time.
- `--mode analytic` (CI smoke, seconds; also a many-seed strategy comparison): the cheap
  analytic problem of tests/search_analytic.py instead of training.

Reported (JSON + PNG): normalised hypervolume (fraction of the runner's fixed reference box)
after every trial, mean ± std per strategy; final hypervolume mean ± std; pairwise two-sided
Mann–Whitney U (scipy) on the final hypervolumes; trials saved by the surrogate (trials DMLS-
surrogate needed to reach DMLS-random's mean final hypervolume, vs DMLS-random; candidates
SaMEA's forest screened out without training); the surrogates' Kendall τ; wall-clock. Each
run's front is written as `<work-dir>/<strategy>_s<seed>/front.json` (the runner's schema, so
`scripts/bench_peers.py --run-dir` can retrain its knee / smallest-within-1-point networks).

    python scripts/bench_search.py --mode train --seeds 0,1,2 --budget 16 \
        --data-root /tmp/bench/mni152 --out benchmarks/results/search_train_cpu.json
    python scripts/bench_search.py --mode analytic --seeds 0-19 --budget 40 --out benchmarks/results/search_analytic.json
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import itertools
import json
import math
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

STRATEGIES = ("samea", "dmls", "dmls_surrogate", "nsga2", "random")


def parse_seeds(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out += list(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


# -- problems -------------------------------------------------------------------------------------


class AnalyticProblem:
    """tests/search_analytic.py: cheap conflicting objectives over real genomes."""

    def __init__(self, args) -> None:
        sys.path.insert(0, str(ROOT / "tests"))
        import search_analytic as sa

        from medseg_nas.config import load_config
        from medseg_nas.space import SearchSpace

        self.sa = sa
        self.cfg = load_config(args.config, args.set)
        self.space = sa.SPACE if not args.set else SearchSpace.from_config(self.cfg.space)
        self.box = sa.BOX
        self.description = {"problem": "tests/search_analytic.py", "space": "full EMONAS space"}

    def f2_of(self, g) -> float:
        return self.sa.f2(g)

    def evaluate(self, g) -> dict:
        f1, f2 = self.sa.objectives(g)
        return {"status": "done", "f1": f1, "f2": f2, "val_dice": None, "seconds": 0.0, "cached": False}

    def close(self) -> None:
        pass


class TrainProblem:
    """Real training on a small budget, with a cache shared by every strategy and seed."""

    def __init__(self, args) -> None:
        from medseg_nas import data as mdata
        from medseg_nas.config import load_config
        from medseg_nas.runner import SearchContext, reference_box
        from medseg_nas.space import SearchSpace

        overrides = list(args.set) + [
            f"data.root={args.data_root}",
            f"train.epochs={args.epochs}", f"train.iters_per_epoch={args.iters}", "train.patience=0",
            f"train.seed={args.train_seed}", "train.device=cpu",
        ]
        if args.spacing:
            overrides.append(f"data.target_spacing=[{','.join(str(s) for s in args.spacing)}]")
        if args.patch:
            overrides.append(f"data.patch_size=[{','.join(str(p) for p in args.patch)}]")
        cfg = load_config(args.config, overrides)
        self.cfg = cfg
        root = Path(cfg.data.root)
        if not (root / "dataset.json").is_file():
            from data_prep import mni152

            print(f"generating {args.cases} MNI152 tissue cases in {root} ...", flush=True)
            mni152.generate(root, cases=args.cases, seed=0)
        datalist = mdata.load_datalist(root)
        split = mdata.make_split(datalist, seed=cfg.data.split_seed, val_fraction=cfg.data.val_fraction,
                                 test_fraction=cfg.data.test_fraction)
        self.plan = mdata.make_plan(mdata.compute_fingerprint(root, datalist), cfg.data)
        self.bundle = mdata.build_datasets(datalist, split, self.plan, cfg.data)
        self.space = SearchSpace.from_config(cfg.space)
        ctx = SearchContext(in_channels=int(self.plan.in_channels), n_classes=int(self.plan.n_classes),
                            network_plan=self.plan.network_plan, plan=self.plan)
        self.box = reference_box(cfg, ctx)
        budget_key = {"root": str(root.resolve()), "n_cases": len(datalist), "split": list(split.train),
                      "plan": self.plan.to_dict(), "train": dataclasses.asdict(cfg.train),
                      "objectives": dataclasses.asdict(cfg.objectives), "augment": cfg.data.augment}
        if cfg.space.cell != "residual":  # keeps the hash (and caches) of runs from before space.cell
            budget_key["cell"] = cfg.space.cell
        self.budget_hash = hashlib.sha1(json.dumps(budget_key, sort_keys=True).encode()).hexdigest()[:12]
        self.cache_path = Path(args.work_dir) / "cache.jsonl"
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        self.cache: dict[str, dict] = {}
        if self.cache_path.is_file():
            for line in self.cache_path.read_text().splitlines():
                if line.strip():
                    d = json.loads(line)
                    if d.get("budget") == self.budget_hash:
                        self.cache[d["key"]] = d
        self.n_trained = 0
        self._f2: dict[str, float] = {}
        self.description = {
            "problem": "Trainer.fit on the MNI152-derived tissue set", "data_root": str(root),
            "n_train": len(split.train), "n_val": len(split.val), "patch_size": list(self.plan.patch_size),
            "target_spacing": list(self.plan.target_spacing), "epochs": cfg.train.epochs,
            "iters_per_epoch": cfg.train.iters_per_epoch, "batch_size": cfg.train.batch_size,
            "train_seed": cfg.train.seed, "space": dataclasses.asdict(cfg.space), "budget_hash": self.budget_hash,
            "cache_entries_at_start": len(self.cache),
        }

    def f2_of(self, g) -> float:
        from medseg_nas.space import count_parameters

        k = g.key()
        if k not in self._f2:
            p = self.plan
            self._f2[k] = math.log(count_parameters(g, int(p.in_channels), int(p.n_classes), p.network_plan,
                                                    self.cfg.space.cell))
        return self._f2[k]

    def evaluate(self, g) -> dict:
        from medseg_nas.search.objectives import compute_objectives
        from medseg_nas.train import Trainer

        k = g.key()
        if k in self.cache:
            return {**self.cache[k], "cached": True}
        trainer = Trainer(self.cfg.train, self.bundle, self.plan, device="cpu", progress=False, cell=self.cfg.space.cell)
        r = trainer.fit(g, seed=int(self.cfg.train.seed))
        d = {"key": k, "budget": self.budget_hash, "genome": g.to_json(), "status": r.status, "error": r.error,
             "seconds": round(r.seconds, 2), "n_params": r.n_params, "val_dice": r.val_dice,
             "train_dice": r.train_dice, "e_max": r.e_max}
        if r.status == "done":
            d["f1"], d["f2"] = compute_objectives(r, self.cfg.objectives)
        self.n_trained += 1
        self.cache[k] = d
        with open(self.cache_path, "a") as fh:
            fh.write(json.dumps(d) + "\n")
        return {**d, "cached": False}

    def close(self) -> None:
        pass


# -- one search -----------------------------------------------------------------------------------


def make(name: str, problem, seed: int):
    from medseg_nas.search import make_strategy

    scfg = copy.deepcopy(problem.cfg.search)
    base = name
    if name.startswith("dmls"):
        base = "dmls"
        scfg.dmls.neighbour_order = "surrogate" if name == "dmls_surrogate" else "random"
    return make_strategy(base, problem.space, scfg, problem.f2_of, seed)


def run_one(name: str, seed: int, problem, budget: int, out_dir: Path | None) -> dict:
    from medseg_nas.runner import knee_index, normalised_hypervolume, pareto_indices

    from medseg_nas.search.driver import drive

    strat = make(name, problem, seed)
    t0 = time.perf_counter()
    d = drive(strat, problem.evaluate, budget,
              objectives_of=lambda e: (e["f1"], e["f2"]) if e["status"] == "done" else None)
    seen = {g.key(): dict(d.results[g.key()], genome_obj=g) for g in d.order}
    order = [g.key() for g in d.order]
    overhead = d.strategy_seconds
    hv: list[float] = []
    for j in range(1, len(order) + 1):
        F = [(seen[k]["f1"], seen[k]["f2"]) for k in order[:j] if seen[k]["status"] == "done"]
        hv.append(normalised_hypervolume(F, problem.box) if F else 0.0)
    wall = time.perf_counter() - t0
    stats = strat.stats() if hasattr(strat, "stats") else {}
    taus = [t for t in (stats.get("surrogate_taus") or []) if t is not None]
    done = [k for k in order if seen[k]["status"] == "done"]
    F = [(seen[k]["f1"], seen[k]["f2"]) for k in done]
    front = pareto_indices(F)
    knee = knee_index(F, front)
    row = {
        "strategy": name, "seed": seed, "n_trials": len(order), "n_failed": len(order) - len(done),
        "stop": d.stop,
        "hv": [round(h, 5) for h in hv], "final_hv": round(hv[-1], 5) if hv else 0.0,
        "wall_s": round(wall, 2), "overhead_s": round(overhead, 2),
        "train_s": round(sum(seen[k].get("seconds", 0.0) for k in order), 1),
        "cache_hits": sum(1 for k in order if seen[k].get("cached")),
        "front_size": len(front), "best_val_dice": max((seen[k]["val_dice"] or 0.0) for k in done) if done else None,
        "surrogate_taus": [round(t, 3) for t in taus], "surrogate_tau_mean": round(float(np.mean(taus)), 3) if taus else None,
        "stats": {k: v for k, v in stats.items() if k != "surrogate_taus" and not isinstance(v, (list, dict))},
    }
    if out_dir is not None:  # the runner's front.json schema, for bench_peers --run-dir
        out_dir.mkdir(parents=True, exist_ok=True)
        entries = []
        for i in sorted(front, key=lambda i: (F[i][1], F[i][0])):
            e = seen[done[i]]
            entries.append({"id": order.index(done[i]) + 1, "key": done[i], "genome": e["genome_obj"].to_json(),
                            "f1": e["f1"], "f2": e["f2"], "n_params": e.get("n_params"), "val_dice": e.get("val_dice"),
                            "train_dice": e.get("train_dice"), "e_max": e.get("e_max"), "seconds": e.get("seconds")})
        doc = {"name": f"bench_search {name} seed {seed}", "strategy": name, "n_trials": len(order), "n_done": len(done),
               "hypervolume": row["final_hv"],
               "hypervolume_box": {"ideal": list(problem.box[0]), "reference": list(problem.box[1])},
               "knee": order.index(done[knee]) + 1 if knee is not None else None, "front": entries}
        (out_dir / "front.json").write_text(json.dumps(doc, indent=2))
    return row


# -- statistics and plot --------------------------------------------------------------------------


def first_reaching(curve: list[float], target: float) -> int | None:
    for i, h in enumerate(curve):
        if h >= target - 1e-12:
            return i + 1
    return None


def summarise(runs: list[dict], budget: int) -> dict:
    from scipy.stats import mannwhitneyu

    by = {}
    for r in runs:
        by.setdefault(r["strategy"], []).append(r)
    out = {"per_strategy": {}, "mann_whitney_u": {}}
    for name, rs in by.items():
        finals = [r["final_hv"] for r in rs]
        taus = [t for r in rs for t in r["surrogate_taus"]]
        out["per_strategy"][name] = {
            "n_seeds": len(rs), "final_hv_mean": round(float(np.mean(finals)), 5),
            "final_hv_std": round(float(np.std(finals, ddof=1)) if len(finals) > 1 else 0.0, 5),
            "final_hv": finals, "wall_s_mean": round(float(np.mean([r["wall_s"] for r in rs])), 2),
            "train_s_mean": round(float(np.mean([r["train_s"] for r in rs])), 1),
            "overhead_s_mean": round(float(np.mean([r["overhead_s"] for r in rs])), 3),
            "trials_mean": round(float(np.mean([r["n_trials"] for r in rs])), 1),
            "surrogate_tau_mean": round(float(np.mean(taus)), 3) if taus else None,
            "surrogate_tau_n": len(taus),
        }
        if name == "samea":
            rej = [r["stats"].get("surrogate_rejected") for r in rs if r["stats"].get("surrogate_rejected") is not None]
            scr = [r["stats"].get("surrogate_screened") for r in rs if r["stats"].get("surrogate_screened") is not None]
            out["per_strategy"][name]["surrogate_screened_mean"] = float(np.mean(scr)) if scr else None
            out["per_strategy"][name]["surrogate_rejected_mean"] = float(np.mean(rej)) if rej else None
    names = list(by)
    for a, b in itertools.combinations(names, 2):
        fa, fb = [r["final_hv"] for r in by[a]], [r["final_hv"] for r in by[b]]
        try:
            res = mannwhitneyu(fa, fb, alternative="two-sided")
            out["mann_whitney_u"][f"{a} vs {b}"] = {"U": float(res.statistic), "p": round(float(res.pvalue), 4)}
        except ValueError as exc:  # all values identical
            out["mann_whitney_u"][f"{a} vs {b}"] = {"U": None, "p": None, "note": str(exc)}
    if "dmls" in by and "dmls_surrogate" in by:
        target = float(np.mean([r["final_hv"] for r in by["dmls"]]))
        need = {}
        for name in names:
            hits = [first_reaching(r["hv"], target) for r in by[name]]
            need[name] = {"trials_to_target": hits,
                          "reached": sum(h is not None for h in hits),
                          "mean_trials_if_reached": round(float(np.mean([h for h in hits if h])), 1) if any(hits) else None}
        saved = None
        if need["dmls"]["mean_trials_if_reached"] and need["dmls_surrogate"]["mean_trials_if_reached"]:
            saved = round(need["dmls"]["mean_trials_if_reached"] - need["dmls_surrogate"]["mean_trials_if_reached"], 1)
        out["surrogate_savings"] = {"target_hv": round(target, 5), "target": "mean final hypervolume of DMLS (random order)",
                                    "per_strategy": need, "trials_saved_dmls_surrogate_vs_dmls": saved}
    return out


def plot(runs: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    by = {}
    for r in runs:
        by.setdefault(r["strategy"], []).append(r["hv"])
    for name, curves in by.items():
        n = max(len(c) for c in curves)
        M = np.array([c + [c[-1]] * (n - len(c)) if c else [0.0] * n for c in curves])
        x = np.arange(1, n + 1)
        m, s = M.mean(0), M.std(0)
        ax.plot(x, m, label=f"{name} (n={len(curves)})")
        ax.fill_between(x, m - s, m + s, alpha=0.15)
    ax.set_xlabel("trials (distinct genomes evaluated)")
    ax.set_ylabel("normalised hypervolume")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(out: Path, args, seeds, names, problem, runs, total: float) -> dict:
    import subprocess

    import torch

    summary = summarise(runs, args.budget)
    commit = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h", "--", "medseg_nas/search"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "medseg_nas/search"],
                           capture_output=True, text=True).stdout.strip()
    h = hashlib.sha1()
    for f in sorted((ROOT / "medseg_nas" / "search").glob("*.py")):
        h.update(f.name.encode() + f.read_bytes())
    provenance = {"commit": commit or None, "uncommitted_changes": bool(dirty), "sources_sha1": h.hexdigest()[:12]}
    doc = {"benchmark": "bench_search", "mode": args.mode, "budget_trials": args.budget, "seeds": seeds,
           "strategies": names, "config": args.config, "overrides": args.set, "search_code": provenance,
           "threads": torch.get_num_threads(), "torch": torch.__version__, "machine": platform.machine(),
           "hypervolume_box": {"ideal": list(problem.box[0]), "reference": list(problem.box[1])},
           "problem": problem.description, "total_wall_s": round(total, 1),
           "trained_this_invocation": getattr(problem, "n_trained", None),
           "complete": len(runs) == len(seeds) * len(names),
           "argv": sys.argv[1:], "summary": summary, "runs": runs}
    out.write_text(json.dumps(doc, indent=2))
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("train", "analytic"), default="train")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--seeds", default="0,1,2", help="strategy seeds, e.g. 0,1,2 or 0-19")
    ap.add_argument("--budget", type=int, default=16, help="distinct genomes evaluated per run")
    ap.add_argument("--config", default="configs/quickstart.yaml", help="space / search / objectives settings")
    ap.add_argument("--set", action="append", default=[], help="config override, e.g. search.nsga2.pop_size=6")
    ap.add_argument("--data-root", default="data/mni152_tissue")
    ap.add_argument("--cases", type=int, default=24, help="cases to generate if --data-root is missing")
    ap.add_argument("--spacing", type=float, nargs=3, default=[6.0, 6.0, 6.0])
    ap.add_argument("--patch", type=int, nargs=3, default=[16, 16, 16])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--iters", type=int, default=4)
    ap.add_argument("--train-seed", type=int, default=0)
    ap.add_argument("--work-dir", default="runs/bench_search", help="cache and per-run front.json")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    names = [s for s in args.strategies.split(",") if s]
    bad = [s for s in names if s not in STRATEGIES]
    if bad:
        raise SystemExit(f"unknown strategies {bad}; choose from {', '.join(STRATEGIES)}")
    out = Path(args.out or f"benchmarks/results/search_{args.mode}_cpu.json")
    problem = TrainProblem(args) if args.mode == "train" else AnalyticProblem(args)
    work = Path(args.work_dir) / args.mode
    t0 = time.perf_counter()
    runs: list[dict] = []
    out.parent.mkdir(parents=True, exist_ok=True)
    for seed in seeds:  # seed-major: the cache fills evenly, a cut-short run still has every strategy
        for name in names:
            r = run_one(name, seed, problem, args.budget, work / f"{name}_s{seed}")
            runs.append(r)
            print(f"{name:15s} seed {seed:2d}: {r['n_trials']:3d} trials ({r['cache_hits']:3d} cached, {r['n_failed']} failed)"
                  f"  final HV {r['final_hv']:.4f}  train {r['train_s']:7.1f}s  wall {r['wall_s']:7.1f}s"
                  f"  tau {r['surrogate_tau_mean']}", flush=True)
            summary = write(out, args, seeds, names, problem, runs, time.perf_counter() - t0)  # partial results survive
    total = time.perf_counter() - t0
    summary = write(out, args, seeds, names, problem, runs, total)
    png = out.with_suffix(".png")
    plot(runs, png, f"bench_search ({args.mode}): budget {args.budget}, seeds {args.seeds}")
    for name, s in summary["per_strategy"].items():
        print(f"{name:15s} final HV {s['final_hv_mean']:.4f} ± {s['final_hv_std']:.4f}  (n={s['n_seeds']})"
              f"  tau {s['surrogate_tau_mean']}  train {s['train_s_mean']:.0f}s  overhead {s['overhead_s_mean']:.2f}s")
    for pair, t in summary["mann_whitney_u"].items():
        print(f"  MWU {pair}: U={t['U']} p={t['p']}")
    if "surrogate_savings" in summary:
        print(f"  trials saved (DMLS-surrogate vs DMLS to reach {summary['surrogate_savings']['target_hv']:.4f}):"
              f" {summary['surrogate_savings']['trials_saved_dmls_surrogate_vs_dmls']}")
    print(f"wrote {out} and {png} ({total:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
