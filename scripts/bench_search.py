"""Which search strategy finds the better front for the same budget (issues 7 and 12).

Named variants — a strategy plus `search.*` config overrides — each driven through
`medseg_nas.search.make_strategy`'s ask/tell interface for the same number of distinct trained
genomes (`--budget`), with the same per-trial training budget, for several strategy seeds. A
genome a strategy asks for again is answered from that run's history and does not count (as in
the runner). `--variants` is a comma-separated list of `strategy` or
`label=strategy:key=value:key=value` (keys under `search.`), e.g.

    --variants samea,dmls,dmls_linear=dmls:search.dmls.neighbour_order=linear,nsga2,random

`dmls_linear`, `dmls_forest` (and the old `dmls_surrogate`) are predefined. Every variant runs
with the same first-batch policy (`search.seed_smallest` of the config and `--set`; a variant
may not override it), so the comparison measures searches, not starts.

Modes
- `--mode train` (the benchmark): every trial is a real `Trainer.fit` on the MNI152-derived data
  with a deliberately tiny per-trial budget (`--spacing/--patch/--epochs/--iters`), objectives
  from `medseg_nas.search.objectives` (f1) and the exact parameter count (f2). Training on CPU is
  deterministic for a genome and a training seed (tests/test_train.py::test_deterministic_on_cpu),
  and every trial uses the same training seed (`--train-seed`), so a genome trained once answers
  every strategy and every strategy seed: results are kept in a JSON-lines cache
  (`<work-dir>/cache.jsonl`, or `--cache FILE`, keyed by genome and budget) and reused, also across
  invocations, machines and sessions (medseg_nas/bench/trial_cache.py: the first line for a genome
  wins, a damaged line is skipped). A cache in a tracked file lets a comparison too long for one
  session grow over several: each invocation trains only what the file does not answer.
  `--device cuda` trains on a GPU (another problem: its lines never answer CPU trials).
  `--replay-only` trains nothing: a run whose trial the cache does not hold stops with an error, so
  a CUDA cache can be replayed (`--device cuda --replay-only`) on a machine without a GPU.
  `--rescore-from CACHE` reuses another objective's trials: CACHE's lines of the same training under
  the config's own objectives answer this run (`--set objectives.dice_at=best ...`), their f1
  recomputed from the stored best-epoch Dice and written to this run's cache (trial_cache.rescored).
  `--jobs K` (a many-core or GPU machine) splits the seeds over K worker processes that fill the
  shared cache at once, then replays every run from the cache in this process for the record, so
  the record is the same as a serial run's that got the same answers.
  "train_s" of a run is what its trials cost to train (cached or not), i.e. the wall-clock the
  run would have taken on its own; "overhead_s" is the strategy's own ask/tell time.
- `--mode analytic` (CI smoke, seconds; also a many-seed strategy comparison): the cheap
  analytic problem of medseg_nas.testing.analytic instead of training.

Reported per variant (JSON, a markdown table from scripts/bench_tables.py beside it as .md, and
a PNG): normalised hypervolume (fraction of the runner's fixed reference box) after every trial;
final hypervolume mean ± std; two-sided Mann–Whitney U (scipy) on the final hypervolumes for
every pair of variants; trials each variant needs to reach the mean final hypervolume of the
`--target` variant (plain DMLS by default); the surrogate's Kendall τ after the learning phase
(the τ a strategy logs in `stats()["surrogate_taus"]`, which it measures only while its model
decides: SaMEA after its learning generations, DMLS after its initial archive; batches of 8
trials; it covers only the genomes the model let through — DMLS's top-predicted neighbours, cut
short by first improvement — so it is range-restricted and can be far below the model's τ over
a whole neighbourhood); candidates SaMEA's forest screened out without training; wall-clock. Each run's front
is written as `<work-dir>/<mode>/<label>_s<seed>/front.json` (the runner's schema, so
`scripts/bench_peers.py --run-dir` can retrain its knee / smallest-within-1-point networks).

    python scripts/bench_search.py --mode train --seeds 0-4 --budget 30 \
        --data-root /tmp/bench/mni152 --out benchmarks/results/search_train_cpu.json
    python scripts/bench_search.py --mode analytic --seeds 0-19 --budget 40 --out benchmarks/results/search_analytic.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from pathlib import Path

from medseg_nas.bench.search_bench import (DEFAULT_VARIANTS, AnalyticProblem, TrainProblem, Variant, parse_seeds,
                                            parse_variants, plot, run_one, search_code_provenance, summarise,
                                            variant_search_config)
from medseg_nas.bench.stated_tests import StatedTests, check_plan
from medseg_nas.bench.tables import search as search_table

ROOT = Path(__file__).resolve().parents[1]


def write(out: Path, args, seeds, variants: list[Variant], problem, runs, total: float) -> dict:
    import torch

    summary = summarise(runs, args.budget, args.target, args.plan)
    provenance = search_code_provenance(ROOT)
    doc = {"benchmark": "bench_search", "mode": args.mode, "budget_trials": args.budget, "seeds": seeds,
           "strategies": [v.label for v in variants],
           "variants": [{"label": v.label, "strategy": v.strategy, "overrides": list(v.overrides)} for v in variants],
           "seed_smallest": bool(problem.cfg.search.seed_smallest),
           "config": args.config, "overrides": args.set, "search_code": provenance,
           "threads": torch.get_num_threads(), "torch": torch.__version__, "machine": platform.machine(),
           "hypervolume_box": {"ideal": list(problem.box[0]), "reference": list(problem.box[1])},
           "problem": problem.description, "total_wall_s": round(total, 1),
           "trained_this_invocation": getattr(problem, "n_trained", None),
           "complete": len(runs) == len(seeds) * len(variants),
           "argv": args.argv, "summary": summary, "runs": runs}
    out.write_text(json.dumps(doc, indent=2))
    out.with_suffix(".md").write_text(search_table(doc) + "\n")
    return summary


def fill_cache_in_parallel(args, seeds: list[int], stop_after: float = 0.0) -> set:
    """K workers, each this script over a share of the seeds (one process each, its own torch
    threads), all appending to one cache; their records are discarded: the caller replays. A
    SIGTERM (e.g. `timeout`) stops the workers too, so none outlives its caller."""
    import os
    import signal
    import subprocess

    k = min(args.jobs, len(seeds))
    cache = args.cache or str(Path(args.work_dir) / "cache.jsonl")
    drop = {"--jobs", "--seeds", "--out", "--cache", "--stop-after"}
    rest, skip = [], False
    for a in args.argv:  # the caller's arguments, less the ones each worker gets its own of
        if skip:
            skip = False
            continue
        if a.split("=")[0] in drop:
            skip = "=" not in a
            continue
        rest.append(a)
    threads = max(1, (os.cpu_count() or 2) // k)
    procs = []
    for i in range(k):
        share = ",".join(str(s) for s in seeds[i::k])
        log = Path(args.work_dir) / f"worker{i}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        (Path(args.work_dir) / f"worker{i}.json").unlink(missing_ok=True)  # only this invocation's runs count
        cmd = [sys.executable, __file__, *rest, "--seeds", share, "--cache", cache,
               "--out", str(Path(args.work_dir) / f"worker{i}.json"), "--stop-after", str(stop_after)]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        print(f"worker {i}: seeds {share} → {log}", flush=True)
        procs.append(subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env))
    def stop(signum, frame):
        for p in procs:
            p.terminate()
        raise SystemExit(f"stopped by signal {signum}: the workers were told to stop; the cache keeps their trials")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        failed = [i for i, p in enumerate(procs) if p.wait() != 0]
    finally:
        signal.signal(signal.SIGTERM, previous)
    if failed:  # what the others trained is in the cache; the replay trains what is missing
        print(f"workers {failed} failed (see their logs); the replay trains what they left", flush=True)
    finished = set()
    for i in range(k):
        part = Path(args.work_dir) / f"worker{i}.json"
        if part.is_file():
            finished |= {(r["seed"], r["strategy"]) for r in json.loads(part.read_text()).get("runs", [])}
    return finished


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("train", "analytic"), default="train")
    ap.add_argument("--variants", default=DEFAULT_VARIANTS,
                    help="comma-separated: strategy | predefined label | label=strategy:search.key=value:...")
    ap.add_argument("--strategies", default=None, help="old name of --variants")
    ap.add_argument("--target", default="dmls", help="variant whose mean final HV the others must reach")
    ap.add_argument("--seeds", default="0,1,2", help="strategy seeds, e.g. 0,1,2 or 0-19")
    ap.add_argument("--budget", type=int, default=16, help="distinct genomes evaluated per run")
    ap.add_argument("--config", default="configs/quickstart.yaml", help="space / search / objectives settings")
    ap.add_argument("--set", action="append", default=[],
                    help="config override for every variant, e.g. search.nsga2.pop_size=6 or search.seed_smallest=false")
    ap.add_argument("--data-root", default="data/mni152_tissue")
    ap.add_argument("--cases", type=int, default=24, help="cases to generate if --data-root is missing")
    ap.add_argument("--spacing", nargs="+", default=["6", "6", "6"], help="3 values, or auto (the data plan's)")
    ap.add_argument("--patch", nargs="+", default=["16", "16", "16"], help="3 values, or auto (the data plan's)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--iters", type=int, default=4)
    ap.add_argument("--until", type=int, default=0, help="stop each trial after this epoch of --epochs (a halving rung)")
    ap.add_argument("--control", default="random", help="the stated tests' control variant (one-sided, Holm)")
    ap.add_argument("--alpha", type=float, default=0.05, help="the stated tests' family-wise level")
    ap.add_argument("--train-seed", type=int, default=0)
    ap.add_argument("--work-dir", default="runs/bench_search", help="cache and per-run front.json")
    ap.add_argument("--cache", default="", help="the trial cache file (default <work-dir>/cache.jsonl)")
    ap.add_argument("--device", default="cpu", help="where trials train: cpu (default) or cuda")
    ap.add_argument("--replay-only", action="store_true",
                    help="train nothing: every trial must be in the cache (e.g. a CUDA cache read on a CPU machine)")
    ap.add_argument("--rescore-from", default="", metavar="CACHE",
                    help="a cache of the same trials under the config's own objectives (no --set objectives.*): its lines "
                         "answer this run's, f1 recomputed (needs objectives.dice_at=best and objectives.cost=params)")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes that fill the cache, seeds split over them")
    ap.add_argument("--stop-after", type=float, default=0.0, metavar="SECONDS",
                    help="start no run after this many seconds (a run under way finishes; for a time-limited machine)")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    seeds = parse_seeds(args.seeds)
    variants = parse_variants(args.strategies if args.strategies is not None else args.variants)
    out = Path(args.out or f"benchmarks/results/search_{args.mode}_cpu.json")
    problem = TrainProblem(args) if args.mode == "train" else AnalyticProblem(args)
    for v in variants:  # bad overrides fail before anything is trained
        variant_search_config(v, problem.cfg)
    work = Path(args.work_dir) / args.mode
    args.plan = StatedTests(control=args.control, alpha=args.alpha)
    check_plan(work, args.plan)  # the tests are stated before the first run of this work directory
    t0 = time.perf_counter()
    finished = set()  # (seed, label) the workers completed: replayed from the cache even after --stop-after
    if args.jobs > 1 and args.mode == "train":
        finished = fill_cache_in_parallel(args, seeds, args.stop_after)
        problem.cache.refresh()  # what the workers trained: the runs below replay from it
    runs: list[dict] = []
    out.parent.mkdir(parents=True, exist_ok=True)
    for seed, v in itertools.product(seeds, variants):  # seed-major: the cache fills evenly
        if args.stop_after and time.perf_counter() - t0 > args.stop_after and (seed, v.label) not in finished:
            continue  # the record says complete: false; the cache keeps every trained trial
        r = run_one(v, seed, problem, args.budget, work / f"{v.label}_s{seed}")
        runs.append(r)
        print(f"{v.label:15s} seed {seed:2d}: {r['n_trials']:3d} trials ({r['cache_hits']:3d} cached, {r['n_failed']} failed)"
              f"  final HV {r['final_hv']:.4f}  train {r['train_s']:7.1f}s  wall {r['wall_s']:7.1f}s"
              f"  tau {r['surrogate_tau_mean']}", flush=True)
        summary = write(out, args, seeds, variants, problem, runs, time.perf_counter() - t0)  # partial results survive
    if len(runs) < len(seeds) * len(variants):
        print(f"--stop-after {args.stop_after:.0f} s: {len(runs)} of {len(seeds) * len(variants)} runs recorded "
              "(complete: false); rerun with the same cache to go on", flush=True)
    total = time.perf_counter() - t0
    summary = write(out, args, seeds, variants, problem, runs, total)
    png = out.with_suffix(".png")
    plot(runs, png, f"bench_search ({args.mode}): budget {args.budget}, seeds {args.seeds}, "
                    f"seed_smallest {problem.cfg.search.seed_smallest}")
    for name, s in summary["per_strategy"].items():
        print(f"{name:15s} final HV {s['final_hv_mean']:.4f} ± {s['final_hv_std']:.4f}  (n={s['n_seeds']})"
              f"  tau {s['surrogate_tau_mean']}  train {s['train_s_mean']:.0f}s  overhead {s['overhead_s_mean']:.2f}s")
    for pair, t in summary["mann_whitney_u"].items():
        print(f"  MWU {pair}: U={t['U']} p={t['p']}")
    for n, t in summary.get("stated_tests", {}).get("per_variant", {}).items():
        print(f"  stated: {n} > {args.control}: p={t['p']} Holm p={t['p_adjusted']} reject={t['reject']} power={t['power']}")
    print(f"wrote {out}, {out.with_suffix('.md')} and {png} ({total:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
