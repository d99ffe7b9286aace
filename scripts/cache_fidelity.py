"""How well does the strategy comparison's own proxy rank the genomes it trained? (issue 27, item 5)

    python scripts/cache_fidelity.py benchmarks/cache/search_hippocampus_4x50_cuda.jsonl \\
        --config configs/hippocampus_cpu.yaml --data-root data/Task04_Hippocampus --draw 20 --draw-seed 0 \\
        --epochs 8 --iters 50 --stop-at 21:35 --out benchmarks/results/hippocampus_proxy_fidelity_cuda_draw.json

Why another fidelity script: scripts/proxy_fidelity.py measured the proxy on 10 trials of one
search run, chosen along its front, against its CPU proxy values. The comparison's trials are the
CUDA cache's genomes, so this draws its genomes at random from that cache (the population the
comparison's hypervolumes are made of), in an order fixed by `--draw-seed` before anything trains,
and takes each one's proxy f1 from the cache. A run stopped by `--stop-at` (wall-clock, UTC) has
measured a prefix of that order: still a random sample. Genomes that learned nothing in their
trial (validation Dice 0, e.g. all-identity cells) are left out: they sit at the f1 bound and make
easy concordant pairs. `--exclude` leaves out the genomes earlier records measured, so a hypothesis
those suggested is tested on genomes that did not suggest it.

Each drawn genome is retrained with the retrain recipe of the earlier study (train + validation
cases minus the monitor slice, the config's split, `--augment` light, `--epochs` x `--iters` steps,
training seed `--seed`, no early stop) and scored on the test split. Reported: Kendall tau-b
against the test Dice of -f1, of log(parameters) (the baseline a proxy must beat) and of the trial's
validation Dice, each with a 95 % percentile bootstrap over genomes, and the paired difference
tau(-f1) - tau(log params) on the same resamples (`stats.tau_table`). Resumable: each genome's
result is written to `--out` as it finishes; a rerun with the same settings skips those.

A test too large for one session (`--seed 0 1 --blind`): each genome is retrained at every seed
before the next starts, one record per seed (`--out` holds `{seed}`), so the records a session
leaves cover the same prefix; and a blind record holds no tau, prints no test Dice and refuses
`--with-seed` until every drawn genome is in, so the test is read once, at the size it was stated at.
`--with-seed` also reads each retrain's own monitor Dice at one seed against the other seed's test
Dice (`cross_seed`): whether a trial as long as the reference would rank above size.
`--mean-with` ranks against the mean test Dice of any number of seeds (`seed_mean`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

from medseg_nas.bench.scoring import retrain_and_score
from medseg_nas.bench.stats import tau_table
from medseg_nas.bench.throughput import WHOLE_TRIALS
from medseg_nas.bench.trial_cache import finished_trials
from medseg_nas.config import load_config
from medseg_nas.jsonio import atomic_write
from medseg_nas.space import Genome
from medseg_nas.stages.retrain import retrain_data

KEYS = ("neg_f1", "log_params", "search_val_dice")


def draw_order(trials: dict[str, dict], seed: int, exclude: frozenset[str] = frozenset(), max_params: int = 0) -> list[str]:
    """The learned genomes' keys, less `exclude`, in a random order fixed by `seed` (keys sorted
    first, so the order depends on the cache's content, not on its line order). `max_params` (0:
    none) keeps only what a retrain capped by `retrain.max_params` could pick."""
    keys = sorted(k for k, e in trials.items() if (e.get("val_dice") or 0.0) > 0.0 and k not in exclude
                  and (not max_params or int(e["n_params"]) <= max_params))
    return [keys[i] for i in np.random.default_rng(seed).permutation(len(keys))]


def kendall(entries: list[dict]) -> dict:
    rows = [{"neg_f1": -e["f1"], "log_params": math.log(e["n_params"]), "search_val_dice": e["search_val_dice"],
             "test_mean_dice": e.get("test_mean_dice")} for e in entries if e.get("test_mean_dice") is not None]
    return tau_table(rows, "test_mean_dice", KEYS, seed=0, resamples=10_000, min_n=4)


def paired(*records: list[dict]) -> list[tuple[dict, ...]]:
    """The same genome's entries at several seeds, in the first record's order (the bootstrap
    resamples rows by position), each with a test Dice: a retrain that failed at any seed leaves
    its genome out."""
    first, *others = records
    by_key = [{e["key"]: e for e in r if e.get("test_mean_dice") is not None} for r in others]
    return [(e, *(b[e["key"]] for b in by_key)) for e in first
            if e.get("test_mean_dice") is not None and all(e["key"] in b for b in by_key)]


def seed_agreement(a: list[dict], b: list[dict]) -> dict:
    """Two training seeds of the same reference: their τ is the ceiling a proxy can reach against
    one seed; against their mean (`seed_mean`) the reference is less noisy. `seed_sd` here is that
    of the seed-to-seed difference over √2 (`seed_mean`'s residual sd at two seeds), so a seed's
    constant offset does not count as noise."""
    rows = [{"ref0": e["test_mean_dice"], "ref1": o["test_mean_dice"]} for e, o in paired(a, b)]
    mean = seed_mean(a, b)
    return {"n": mean["n"], "seed_to_seed": tau_table(rows, "ref1", ("ref0",), seed=0, resamples=10_000, min_n=4),
            "against_mean": mean["against_mean"],
            "seed_sd": mean["seed_sd"], "ref_sd_across_genomes": mean["ref_sd_across_genomes"],
            "cross_seed": {"seed0_val_to_seed1_test": cross_seed(a, b), "seed1_val_to_seed0_test": cross_seed(b, a)}}


def cross_seed(trial: list[dict], reference: list[dict]) -> dict:
    """Would a longer trial rank? Each retrain's own best-epoch monitor Dice at one seed, read as a
    trial, against the test Dice of the other seed's retrain (an independent run, as the search's
    trial and the final retrain are), with log(parameters) as the control on the same resamples."""
    rows = [{"target": o["test_mean_dice"], "log_params": math.log(e["n_params"]), "retrain_val_dice": e.get("val_dice")}
            for e, o in paired(trial, reference)]
    return tau_table(rows, "target", ("log_params", "retrain_val_dice"), seed=0, resamples=10_000, min_n=4)


def seed_mean(*records: list[dict]) -> dict:
    """Every seed's mean test Dice as the reference: less noisy than any one seed, but no test once
    some of its seeds have been read. `seed_sd` is the residual sd of a genome + seed fit,
    SS/((n-1)(k-1)): a seed's constant offset is not noise (for two seeds it is sd(difference)/√2,
    `seed_agreement`'s); the mean's own noise is that over the square root of the seed count."""
    groups = paired(*records)
    dice = np.array([[g["test_mean_dice"] for g in group] for group in groups], float).reshape(len(groups), len(records))
    ref_mean = dice.mean(axis=1)
    rows = [{"ref_mean": float(m), "neg_f1": -group[0]["f1"], "log_params": math.log(group[0]["n_params"]),
             "search_val_dice": group[0]["search_val_dice"]} for m, group in zip(ref_mean, groups)]
    return {"n": len(rows), "seeds": len(records), "against_mean": tau_table(rows, "ref_mean", KEYS, seed=0, resamples=10_000, min_n=4),
            "seed_sd": residual_sd(dice) if len(rows) > 1 and len(records) > 1 else None,
            "ref_sd_across_genomes": round(float(np.std(ref_mean, ddof=1)), 4) if len(rows) > 1 else None}


def residual_sd(x: np.ndarray) -> float:
    """Seed noise left after each genome's mean and each seed's offset are taken out (two-way
    additive fit without interaction, genomes in rows, seeds in columns)."""
    resid = x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + x.mean()
    n, k = x.shape
    return round(math.sqrt(float((resid ** 2).sum()) / ((n - 1) * (k - 1))), 4)


def deadline(stop_at: str | None, start: dt.datetime) -> dt.datetime | None:
    """The first `stop_at` ("HH:MM", UTC) after `start`: a run started at 23:00 with 00:35 stops
    the next day, not at once (a string comparison of clock times would)."""
    if not stop_at:
        return None
    hour, minute = (int(x) for x in stop_at.split(":"))
    at = start.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return at if at > start else at + dt.timedelta(days=1)


def complete(doc: dict) -> bool:
    return {e["key"] for e in doc["entries"]} >= set(doc.get("drawn") or [])


def open_record(path: Path, settings: dict, population: int, order: list[str]) -> dict:
    """The seed's record so far, or a new one; a record measured with other settings is refused."""
    doc = json.loads(path.read_text()) if path.is_file() else {}
    if doc and {k: doc.get(k) for k in settings} != settings:
        raise SystemExit(f"{path} was measured with {({k: doc.get(k) for k in settings})}, not {settings}")
    doc = doc or {"benchmark": "cache_fidelity", **settings, "population": population,
                  "torch_threads": torch.get_num_threads(), "entries": []}
    doc["drawn"] = order
    return doc


def summarise(doc: dict, blind: bool) -> dict:
    """The record's τ table; a blind record holds a count in its place until every drawn genome is
    measured: a test that runs over several sessions is read once, at its stated size."""
    if blind and not complete(doc):
        return {"blind": f"{len(doc['entries'])} of {len(doc['drawn'])} drawn genomes measured; no τ until all are"}
    return kendall(doc["entries"])


def complete_records(*paths: Path) -> list[dict]:
    """The records, each refused while it is blind and incomplete: seeds are compared once each is in."""
    docs = [json.loads(path.read_text()) for path in paths]
    for path, d in zip(paths, docs):
        if d.get("blind") and not complete(d):
            raise SystemExit(f"{path} is a blind record with {len(d['entries'])} of {len(d['drawn'])} drawn genomes "
                             "measured: its seeds are compared once every record is complete")
    return docs


def with_seed(out: Path, other_path: Path) -> int:
    doc, other = complete_records(out, other_path)
    doc["seed_agreement"] = {"with": str(other_path), "seed": other.get("seed"),
                             **seed_agreement(doc["entries"], other["entries"])}
    atomic_write(out, json.dumps(doc, indent=2, default=str))
    print(json.dumps(doc["seed_agreement"], indent=2))
    return 0


def mean_with(out: Path, other_paths: list[Path]) -> int:
    doc, *others = complete_records(out, *other_paths)
    doc["seed_mean"] = {"with": [str(p) for p in other_paths], "with_seeds": [o.get("seed") for o in others],
                        **seed_mean(doc["entries"], *(o["entries"] for o in others))}
    atomic_write(out, json.dumps(doc, indent=2, default=str))
    print(json.dumps(doc["seed_mean"], indent=2))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cache")
    ap.add_argument("--config", required=True)
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--draw", type=int, default=20, help="genomes to measure, in the drawn order")
    ap.add_argument("--draw-seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--augment", default="light", help="the retrain's augmentation (the earlier study's: light)")
    ap.add_argument("--max-params", type=int, default=0,
                    help="draw only genomes with at most this many parameters (a config's retrain.max_params; 0: all)")
    ap.add_argument("--seed", type=int, nargs="+", default=[0],
                    help="training seeds of the retrains; with several, each genome is retrained at every seed "
                         "before the next starts (a stopped run leaves the seeds on the same prefix) and --out "
                         "holds {seed}")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--stop-at", default=None, help="HH:MM UTC: start no genome after the first such time after the start")
    ap.add_argument("--exclude", nargs="*", default=[],
                    help="records of earlier draws: their measured genomes are left out of the population (a fresh draw)")
    ap.add_argument("--blind", action="store_true",
                    help="write and print no τ and no test Dice until every drawn genome is measured")
    read_only = ap.add_mutually_exclusive_group()
    read_only.add_argument("--with-seed", default=None,
                    help="another training seed's record of the same draw: write their agreement into --out, train nothing")
    read_only.add_argument("--mean-with", nargs="+", default=None,
                    help="other training seeds' records of the same draw: write τ against every seed's mean test "
                         "Dice into --out (seed_mean), train nothing")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    if args.with_seed:
        return with_seed(Path(args.out), Path(args.with_seed))
    if args.mean_with:
        return mean_with(Path(args.out), [Path(p) for p in args.mean_with])
    if len(args.seed) > 1 and "{seed}" not in args.out:
        raise SystemExit(f"--out {args.out} must hold {{seed}}: {len(args.seed)} seeds write one record each")

    stop = deadline(args.stop_at, dt.datetime.now(dt.timezone.utc))
    budget, trials = finished_trials(Path(args.cache))
    excluded = frozenset(e["key"] for r in args.exclude for e in json.loads(Path(r).read_text())["entries"])
    drawable = draw_order(trials, args.draw_seed, excluded, args.max_params)
    order = drawable[: args.draw]
    settings = {"cache": args.cache, "cache_budget": budget, "config": args.config, "draw_seed": args.draw_seed,
                "budget": [args.epochs, args.iters], "augment": args.augment,
                "exclude": sorted(args.exclude) or None, "blind": args.blind or None}
    if args.max_params:  # absent otherwise, so the records made before the option still resume
        settings["max_params"] = args.max_params
    paths = {seed: Path(args.out.replace("{seed}", str(seed))) for seed in args.seed}
    docs = {seed: open_record(path, {**settings, "seed": seed}, len(drawable), order) for seed, path in paths.items()}

    cfg = load_config(args.config, [*WHOLE_TRIALS, f"data.root={args.data_root}", "train.patience=0",
                                    f"train.device={args.device}", f"retrain.augment={args.augment}"])
    data = {seed: retrain_data(cfg, None, seed) for seed in args.seed}
    print(f"{len(order)} of {len(drawable)} learned genomes drawn ({len(excluded & set(trials))} excluded), "
          + ", ".join(f"seed {s}: {len(d['entries'])} measured" for s, d in docs.items())
          + f"; retrain {args.epochs} x {args.iters} steps, {args.augment} augmentation", flush=True)
    done = {seed: {e["key"] for e in doc["entries"]} for seed, doc in docs.items()}
    for k, key in enumerate(order, start=1):
        trial = trials[key]
        spec = json.loads(trial["genome"])
        genome = Genome.from_dict(spec)
        for seed, doc in docs.items():
            if key in done[seed]:
                continue
            if stop is not None and dt.datetime.now(dt.timezone.utc) >= stop:
                print(f"stopped at {stop:%Y-%m-%d %H:%M} UTC before genome {k}, seed {seed}", flush=True)
                return finish(docs, paths, args.blind)
            bundle, plan = data[seed]
            scored = retrain_and_score(cfg, genome, seed, plan, bundle, args.device, epochs=args.epochs,
                                       iters_per_epoch=args.iters, patience=0)
            entry = {"key": key, "draw_index": k - 1, "genome": spec,
                     "describe": genome.describe(), "f1": trial["f1"], "f2": trial["f2"],
                     "search_val_dice": trial.get("val_dice"), **{x: y for x, y in scored.items() if x != "per_case_dice"}}
            doc["entries"].append(entry)
            doc["kendall"] = summarise(doc, args.blind)
            atomic_write(paths[seed], json.dumps(doc, indent=2, default=str))
            outcome = "" if args.blind else f" -> test {entry.get('test_mean_dice', float('nan')):.4f}"
            print(f"[{k}/{len(order)}] seed {seed} {genome.describe()} f1 {trial['f1']:.4f} {entry['n_params']:>9,} "
                  f"params{outcome} ({entry['wall_s']:.0f} s)", flush=True)
    return finish(docs, paths, args.blind)


def finish(docs: dict, paths: dict, blind: bool) -> int:
    for seed, doc in docs.items():
        doc["kendall"] = summarise(doc, blind)
        atomic_write(paths[seed], json.dumps(doc, indent=2, default=str))
        print(f"seed {seed}:", json.dumps(doc["kendall"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
