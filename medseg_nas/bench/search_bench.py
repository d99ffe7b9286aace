"""The strategy benchmark's harness: named variants (a strategy plus search.* overrides), the two
problems they search (the analytic one, and real training with a cache shared by every strategy
and seed), one driven search, and the statistics over seeds (scripts/bench_search.py is its CLI)."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import time
from pathlib import Path

import numpy as np

from medseg_nas.bench.throughput import WHOLE_TRIALS
from medseg_nas.bench.trial_cache import TrialCache, rescore_refusal, rescored
from medseg_nas.results import TrialStatus
from medseg_nas.search import STRATEGIES
from medseg_nas.search.surrogate import within_run_tau


PREDEFINED = {
    "samea_adaptive": ("samea", ["search.samea.rules=adaptive"]),
    "dmls_linear": ("dmls", ["search.dmls.neighbour_order=linear"]),
    "dmls_forest": ("dmls", ["search.dmls.neighbour_order=forest"]),
    "dmls_surrogate": ("dmls", ["search.dmls.neighbour_order=forest"]),  # the old name of dmls_forest
}


DEFAULT_VARIANTS = "samea,samea_adaptive,dmls,dmls_linear,dmls_forest,nsga2,random"


LOCKED_KEYS = ("search.seed_smallest", "search.strategy")  # equal start; the strategy is the variant's


@dataclasses.dataclass(frozen=True)
class Variant:
    label: str
    strategy: str
    overrides: tuple[str, ...] = ()


def _split_top(text: str, sep: str) -> list[str]:
    """Split on `sep` outside brackets, so list values like [1,2] survive."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "[{("
        depth -= ch in "]})"
        if ch == sep and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return out + [cur]


def parse_variants(text: str) -> list[Variant]:
    """`strategy` | `label` (predefined) | `label=strategy:key=value:...`, comma-separated."""
    out: list[Variant] = []
    for item in (t.strip() for t in _split_top(text, ",")):
        if not item:
            continue
        head, *overrides = (p.strip() for p in _split_top(item, ":"))
        label, _, strategy = head.partition("=")
        if not strategy:
            label = strategy = head
            if head in PREDEFINED:
                strategy, predefined = PREDEFINED[head]
                overrides = predefined + overrides
        if strategy not in STRATEGIES:
            raise SystemExit(f"variant {item!r}: unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}"
                             f" (or a predefined variant: {', '.join(PREDEFINED)})")
        for o in overrides:
            key = o.split("=", 1)[0].strip()
            if "=" not in o or not key.startswith("search."):
                raise SystemExit(f"variant {item!r}: override {o!r} must look like search.<key>=<value>")
            if key in LOCKED_KEYS:
                raise SystemExit(f"variant {item!r}: {key} is the same for every variant (set it with --set)")
        out.append(Variant(label, strategy, tuple(overrides)))
    labels = [v.label for v in out]
    if len(set(labels)) != len(labels):
        raise SystemExit(f"variant labels must be unique: {labels}")
    if not out:
        raise SystemExit("no variants given")
    return out


def parse_seeds(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out += list(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


class AnalyticProblem:
    """medseg_nas.testing.analytic: cheap conflicting objectives over real genomes."""

    def __init__(self, args) -> None:
        from medseg_nas.config import load_config
        from medseg_nas.space import SearchSpace
        from medseg_nas.testing import analytic as sa

        self.sa = sa
        self.cfg = load_config(args.config, [*WHOLE_TRIALS, *args.set])
        self.space = sa.SPACE if not args.set else SearchSpace.from_config(self.cfg.space)
        self.box = sa.BOX
        self.description = {"problem": "medseg_nas.testing.analytic", "space": "full EMONAS space"}

    def f2_of(self, g) -> float:
        return self.sa.f2(g)

    def evaluate(self, g) -> dict:
        f1, f2 = self.sa.objectives(g)
        return {"status": TrialStatus.DONE, "f1": f1, "f2": f2, "val_dice": None, "seconds": 0.0, "cached": False}

    def close(self) -> None:
        pass


class TrainProblem:
    """Real training on a small budget, with a cache shared by every strategy and seed."""

    def __init__(self, args) -> None:
        from medseg_nas import data as mdata
        from medseg_nas.config import load_config
        from medseg_nas.search.objectives import reference_box
        from medseg_nas.space import SearchSpace

        def overrides_with(sets: list[str]) -> list[str]:
            out = [*WHOLE_TRIALS, *sets, f"data.root={args.data_root}",
                   f"train.epochs={args.epochs}", f"train.iters_per_epoch={args.iters}", "train.patience=0",
                   f"train.seed={args.train_seed}", f"train.device={getattr(args, 'device', 'cpu')}"]
            if args.spacing and list(args.spacing) != ["auto"]:  # "auto": the data plan's own
                out.append(f"data.target_spacing=[{','.join(str(s) for s in args.spacing)}]")
            if args.patch and list(args.patch) != ["auto"]:
                out.append(f"data.patch_size=[{','.join(str(p) for p in args.patch)}]")
            return out

        overrides = overrides_with(args.set)
        # --until K: a trial stops after epoch K of the --epochs schedule, as a halving rung-K trial
        # does (the proxy whose ranking scripts/proxy_budget.py measures as EPOCHSxITERS@K)
        self.until = int(getattr(args, "until", 0) or 0) or None
        cfg = load_config(args.config, overrides)
        self.cfg = cfg
        root = Path(cfg.data.root)
        if not (root / "dataset.json").is_file():
            from data_prep import mni152

            print(f"generating {args.cases} MNI152 tissue cases in {root} ...", flush=True)
            mni152.generate(root, cases=args.cases, seed=0)
        data = mdata.load_data(root, cfg.data)
        datalist, split, self.plan, self.bundle = data.datalist, data.split, data.plan, data.bundle
        self.space = SearchSpace.from_config(cfg.space)
        self.box = reference_box(cfg, int(self.plan.in_channels), int(self.plan.n_classes), self.plan.network_plan)
        # the dataset by name, not path, so that a cache carries across checkouts and machines (the
        # split's case ids and the plan pin the content); the device is in `train`: a GPU trial is
        # another problem (AMP, other kernels) and never answers a CPU one
        def budget_hash(c) -> str:
            key = {"root": root.resolve().name, "n_cases": len(datalist), "split": list(split.train),
                   "plan": self.plan.to_dict(), "train": dataclasses.asdict(c.train),
                   "objectives": dataclasses.asdict(c.objectives), "augment": c.data.augment}
            if c.space.cell != "residual":  # keeps the hash (and caches) of runs from before space.cell
                key["cell"] = c.space.cell
            if self.until is not None and self.until < c.train.epochs:  # keeps the hash of full-schedule runs
                key["until"] = self.until
            return hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]

        self.budget_hash = budget_hash(cfg)
        self.cache_path = Path(getattr(args, "cache", "") or Path(args.work_dir) / "cache.jsonl")
        self.cache = TrialCache(self.cache_path, self.budget_hash)
        # --rescore-from FILE: that cache's lines of the same trials under the config's own objectives
        # (no --set objectives.*) answer this run's, f1 recomputed (trial_cache.rescored); each cache
        # file keeps one budget
        self.source = None
        if getattr(args, "rescore_from", ""):
            source_hash = budget_hash(load_config(args.config, overrides_with(
                [x for x in args.set if not x.split("=", 1)[0].strip().startswith("objectives.")])))
            if source_hash == self.budget_hash:
                raise SystemExit("--rescore-from: this run's objectives are the config's own; use that file as --cache")
            if (why := rescore_refusal(cfg.objectives)) is not None:  # before any trial, not at the first rescore
                raise SystemExit(f"--rescore-from: {why}")
            self.source = TrialCache(Path(args.rescore_from), source_hash)
        self.n_trained = 0
        # --replay-only: the cache must answer every trial (a CUDA cache read on a CPU machine); a
        # miss stops the run instead of training a trial of another problem into it
        self.replay_only = bool(getattr(args, "replay_only", False))
        self._f2: dict[str, float] = {}
        self.description = {
            "problem": f"Trainer.fit on {root.name}", "data_root": str(root),
            "n_train": len(split.train), "n_val": len(split.val), "patch_size": list(self.plan.patch_size),
            "target_spacing": list(self.plan.target_spacing), "epochs": cfg.train.epochs,
            "iters_per_epoch": cfg.train.iters_per_epoch, "until_epoch": self.until, "batch_size": cfg.train.batch_size,
            "train_seed": cfg.train.seed, "space": dataclasses.asdict(cfg.space), "budget_hash": self.budget_hash,
            "cache_entries_at_start": len(self.cache), "device": cfg.train.device,
            "rescored_from": self.source.budget if self.source is not None else None,
        }

    def f2_of(self, g) -> float:
        from medseg_nas.space.network import NetworkSpec

        k = g.key()
        if k not in self._f2:
            self._f2[k] = math.log(NetworkSpec.of(self.plan, self.cfg.space.cell).n_params(g))
        return self._f2[k]

    def evaluate(self, g) -> dict:
        from medseg_nas.search.objectives import compute_objectives
        from medseg_nas.train import Trainer

        k = g.key()
        hit = self.cache.get(k)
        if hit is not None:
            return {**hit, "cached": True}
        src = self.source.get(k) if self.source is not None else None
        if src is not None:  # written under this run's budget, so a replay reads what this run saw
            held, _ = self.cache.put(rescored(src, self.cfg.objectives, self.until or self.cfg.train.epochs, self.budget_hash))
            return {**held, "cached": True}
        if self.replay_only:
            raise SystemExit(f"--replay-only: genome {k} {g.to_json()} is not in {self.cache_path} under budget "
                             f"{self.budget_hash}; nothing was trained. Fill the cache where its trials train "
                             f"(device {self.cfg.train.device}), or leave out the seeds it does not cover.")
        trainer = Trainer(self.cfg.train, self.bundle, self.plan, device=self.cfg.train.device, progress=False,
                          cell=self.cfg.space.cell)
        r = trainer.fit(g, seed=int(self.cfg.train.seed), until=self.until)
        d = {"key": k, "budget": self.budget_hash, "genome": g.to_json(), "status": r.status, "error": r.error,
             "seconds": round(r.seconds, 2), "n_params": r.n_params, "val_dice": r.val_dice,
             "train_dice": r.train_dice, "e_max": r.e_max, "epochs_run": r.epochs_run}
        if r.status == TrialStatus.DONE:
            d["f1"], d["f2"] = compute_objectives(r, self.cfg.objectives)
        self.n_trained += 1
        held, mine = self.cache.put(d)  # another worker's earlier line for this genome wins (trial_cache)
        return {**held, "cached": not mine}

    def close(self) -> None:
        pass


def search_code_provenance(root: Path) -> dict:
    """Which search code a record measured: the last commit touching medseg_nas/search, whether it
    had uncommitted changes, and a hash of its sources (a record outlives the code it ran)."""
    import subprocess

    commit = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%h", "--", "medseg_nas/search"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "medseg_nas/search"],
                           capture_output=True, text=True).stdout.strip()
    h = hashlib.sha1()
    for f in sorted((root / "medseg_nas" / "search").glob("*.py")):
        h.update(f.name.encode() + f.read_bytes())
    return {"commit": commit or None, "uncommitted_changes": bool(dirty), "sources_sha1": h.hexdigest()[:12]}


def variant_search_config(variant: Variant, cfg):
    """The problem's search config with the variant's overrides applied (validated like a config)."""
    from medseg_nas.config import config_from_dict, config_to_dict
    from medseg_nas.errors import ConfigError

    try:
        return config_from_dict(config_to_dict(cfg), f"variant {variant.label}", list(variant.overrides)).search
    except ConfigError as exc:
        raise SystemExit(f"variant {variant.label}: {exc}") from None


def make(variant: Variant, problem, seed: int):
    from medseg_nas.search import make_strategy

    box = problem.box  # ((f1 lo, f2 lo), (f1 hi, f2 hi)): SaMEA's fixed f1 normalisation, as in the runner
    return make_strategy(variant.strategy, problem.space, variant_search_config(variant, problem.cfg), problem.f2_of, seed,
                         f1_bounds=(box[0][0], box[1][0]))


def run_one(variant: Variant, seed: int, problem, budget: int, out_dir: Path | None) -> dict:
    from medseg_nas.search.archive import knee_point, normalised_hypervolume, pareto_front
    from medseg_nas.search.driver import drive

    name = variant.label
    strat = make(variant, problem, seed)
    t0 = time.perf_counter()
    d = drive(strat, problem.evaluate, budget,
              objectives_of=lambda e: (e["f1"], e["f2"]) if e["status"] == TrialStatus.DONE else None)
    seen = {g.key(): dict(d.results[g.key()], genome_obj=g) for g in d.order}
    order = [g.key() for g in d.order]
    overhead = d.strategy_seconds
    hv: list[float] = []
    for j in range(1, len(order) + 1):
        F = [(seen[k]["f1"], seen[k]["f2"]) for k in order[:j] if seen[k]["status"] == TrialStatus.DONE]
        hv.append(normalised_hypervolume(F, *problem.box))
    wall = time.perf_counter() - t0
    stats = strat.stats() if hasattr(strat, "stats") else {}
    taus = [t for t in (stats.get("surrogate_taus") or []) if t is not None]
    done = [k for k in order if seen[k]["status"] == TrialStatus.DONE]
    F = [(seen[k]["f1"], seen[k]["f2"]) for k in done]
    front = pareto_front(F).tolist()
    knee = knee_point(F) if F else None
    row = {
        "strategy": name, "base_strategy": variant.strategy, "overrides": list(variant.overrides),
        "seed": seed, "n_trials": len(order), "n_failed": len(order) - len(done),
        "stop": d.stop,
        "hv": [round(h, 5) for h in hv], "final_hv": round(hv[-1], 5) if hv else 0.0,
        "wall_s": round(wall, 2), "overhead_s": round(overhead, 2),
        "train_s": round(sum(seen[k].get("seconds", 0.0) for k in order), 1),
        "cache_hits": sum(1 for k in order if seen[k].get("cached")),
        "front_size": len(front), "best_val_dice": max((seen[k]["val_dice"] or 0.0) for k in done) if done else None,
        "surrogate_taus": [round(t, 3) for t in taus], "surrogate_tau_mean": round(float(np.mean(taus)), 3) if taus else None,
        "stats": {k: v for k, v in stats.items() if k != "surrogate_taus" and not isinstance(v, (list, dict))},
        "surrogate_pair_values": [[round(a, 6), round(b, 6)] for a, b in stats.get("surrogate_pair_values") or []],
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


def summarise(runs: list[dict], budget: int, target: str = "dmls", plan=None) -> dict:
    """Per variant: final HV, τ, costs; pairwise Mann–Whitney U (descriptive); the tests stated
    before the run (`plan`, each variant against the control); trials to reach `target`'s HV."""
    from scipy.stats import mannwhitneyu

    from medseg_nas.bench.stated_tests import StatedTests, paired_trials_to_target, trials_to_target, versus_control

    by: dict[str, list[dict]] = {}
    for r in runs:
        by.setdefault(r["strategy"], []).append(r)
    out = {"per_strategy": {}, "mann_whitney_u": {}}
    for name, rs in by.items():
        finals = [r["final_hv"] for r in rs]
        taus = [t for r in rs for t in r["surrogate_taus"]]
        out["per_strategy"][name] = {
            "strategy": rs[0].get("base_strategy", name), "overrides": rs[0].get("overrides", []),
            "n_seeds": len(rs), "final_hv_mean": round(float(np.mean(finals)), 5),
            "final_hv_std": round(float(np.std(finals, ddof=1)) if len(finals) > 1 else 0.0, 5),
            "final_hv": finals, "wall_s_mean": round(float(np.mean([r["wall_s"] for r in rs])), 2),
            "train_s_mean": round(float(np.mean([r["train_s"] for r in rs])), 1),
            "overhead_s_mean": round(float(np.mean([r["overhead_s"] for r in rs])), 3),
            "trials_mean": round(float(np.mean([r["n_trials"] for r in rs])), 1),
            # τ is logged only while the strategy's model decides, i.e. after its learning phase
            "surrogate_tau_mean": round(float(np.mean(taus)), 3) if taus else None,
            "surrogate_tau_std": round(float(np.std(taus, ddof=1)), 3) if len(taus) > 1 else None,
            "surrogate_tau_n": len(taus),
            # every predict-before-train pair of a run pooled (issue 27), per run with its n
            "surrogate_tau_pooled": [r["stats"].get("surrogate_tau_pooled") for r in rs],
            "surrogate_pairs": [r["stats"].get("surrogate_pairs") for r in rs],
            # a 14-trial run has ~2 pairs: τ over all seeds, each pair against its own run's only
            "surrogate_tau_within_runs": within_run_tau([r.get("surrogate_pair_values") for r in rs]),
        }
        rej = [r["stats"].get("surrogate_rejected") for r in rs if r["stats"].get("surrogate_rejected") is not None]
        scr = [r["stats"].get("surrogate_screened") for r in rs if r["stats"].get("surrogate_screened") is not None]
        if scr:
            out["per_strategy"][name]["surrogate_screened_mean"] = float(np.mean(scr))
            out["per_strategy"][name]["surrogate_rejected_mean"] = float(np.mean(rej)) if rej else None
    names = list(by)
    for a, b in itertools.combinations(names, 2):
        fa, fb = [r["final_hv"] for r in by[a]], [r["final_hv"] for r in by[b]]
        try:
            res = mannwhitneyu(fa, fb, alternative="two-sided")
            out["mann_whitney_u"][f"{a} vs {b}"] = {"U": float(res.statistic), "p": round(float(res.pvalue), 4)}
        except ValueError as exc:  # all values identical
            out["mann_whitney_u"][f"{a} vs {b}"] = {"U": None, "p": None, "note": str(exc)}
    if names:
        best = max(names, key=lambda n: out["per_strategy"][n]["final_hv_mean"])
        out["best"] = best
        out["mann_whitney_u_vs_best"] = {
            n: (out["mann_whitney_u"].get(f"{n} vs {best}") or out["mann_whitney_u"].get(f"{best} vs {n}"))
            for n in names if n != best}
    if target in by:
        goal = float(np.mean([r["final_hv"] for r in by[target]]))
        need = {}
        for name in names:
            need[name] = trials_to_target([r["hv"] for r in by[name]], goal, budget)
        out["trials_to_target"] = {"variant": target, "target_hv": round(goal, 5),
                                   "target": f"mean final hypervolume of {target}", "per_strategy": need}
        curves = {n: {r["seed"]: r["hv"] for r in by[n]} for n in names}  # the same seed's target, paired
        out["paired_trials_to_target"] = {"variant": target, "per_strategy": {
            n: paired_trials_to_target(curves[n], curves[target], budget) for n in names if n != target}}
    plan = plan or StatedTests()
    if plan.control in by:
        out["stated_tests"] = versus_control({n: [r["final_hv"] for r in by[n]] for n in names}, plan)
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
