"""Issue 28's comparison: searches with and without successive halving at equal wall-clock.

    python scripts/halving_study.py --run halving=runs/hippocampus_cpu_halving \
        --run plain=runs/hippocampus_cpu_plain20 \
        --record plain_record=benchmarks/results/hippocampus_whole_job_aug.json@1200 \
        --rungs-tau benchmarks/results/hippocampus_proxy_rungs.json \
        --out benchmarks/results/hippocampus_halving.json

Per search: genomes examined, trials that reached each rung, genomes per search-hour, seconds,
and the hypervolume in one box (the first run's front.json box; every run here shares the space
and objectives, so the box is the same) over (a) every trial at the highest rung it reached, as
the runner's front does (a lower rung's f1 is of a less trained network, so this is conservative)
and (b) the top-rung trials only. Each search also keeps its trials (genome, objectives, rung) and the
pick its config's retrain would make (`stages.retrain.pick_trial`), so the record, not the run
directory, is what a later session retrains from (the run directories of the first runs were lost
with their machine). `--record NAME=FILE@SECONDS` adds a whole-job record's search
cut at SECONDS of summed trial time (its trials in id order; an older run's control). `--rungs-tau`
copies proxy_budget's Kendall tau per budget (the first rung's ranking).

Rule (3), the retrained picks: `--arm NAME=RECORD[@SEED][,RECORD...]` names `scripts/whole_job_peers.py`
records whose `nas_pick` runs make up one arm (several records: one search each, e.g. the eta-9
searches of seeds 0-2; one record with seeds 0-2: one search retrained three times). `--against NAME`
is the plain arm. Per test case each arm's Dice is averaged over its runs, and the paired difference
arm - plain gets a 95 % percentile bootstrap over cases (medseg_nas.bench.stats.compare); an arm
passes rule (3) if that interval contains 0 or lies above it (docs/studies/halving.md, stated before
the runs).

Target (2), genomes per trial-hour: `--twins HALVING:PLAIN` pairs two `--run` searches; the record gets each
pair's ratio and the ratio of the means, against the 3.0 stated in halving.md. `--speed NAME=DIR_A:DIR_B`
times the same work in two run directories (same trial id, rung and genome, done in both: a search
repeated with the same seeds trains the same networks until the clock makes them part), so a genome
rate measured on one day can be scaled to another's machine speed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from medseg_nas.jsonio import atomic_write
from medseg_nas.trial_store import TrialStore
from medseg_nas.rundir import RunDir
from medseg_nas.search.archive import normalised_hypervolume
from medseg_nas.nas.halving import pickable_ids
from medseg_nas.stages.retrain import cost_caps, pick_trial, trial_params


def run_row(path: Path, box) -> dict:
    run = RunDir(path)
    front = json.loads(run.front_json.read_text())
    fid = front.get("fidelity") or {}
    n_rungs = len(fid.get("rungs", [1]))
    with TrialStore(run.trials_db) as st:
        rows = st.rows()
        rungs = st.rung_rows("done")
    done = [r for r in rows if r.objectives]
    top = [r for r in done if r.rung is None or r.rung == n_rungs - 1]
    seconds = sum(r.seconds or 0 for r in rows)  # trial seconds, every rung of every trial
    log = (run.path / "search.log").read_text() if (run.path / "search.log").is_file() else ""
    cfg = run.config()
    caps = cost_caps(cfg.retrain)
    pick, why = pick_trial(rows, cfg.retrain.pick, caps)
    pickable = pickable_ids(rungs, {t.id: t for t in done}, 0, caps)  # rung-0 val Dice > 0, within the caps
    usable = [r for r in top if r.rung and r.id in pickable]
    return {"genomes": len(rows), "done": len(done), "failed": sum(r.status == "failed" for r in rows),
            "trials_per_rung": fid.get("trials_per_rung") or [len(done)], "rungs": fid.get("rungs"),
            "top_rung": len(top), "promote": getattr(cfg.search.fidelity, "promote", "all"),
            # promoted to the top rung, within the retrain's caps, rung-0 val Dice > 0: what the pick can use
            "top_rung_pickable": len(usable) if fid else None, "trial_seconds": round(seconds, 1),
            "genomes_per_hour": round(len(rows) / seconds * 3600, 1) if seconds else None,
            "hv_highest_rung": round(normalised_hypervolume([r.objectives for r in done], *box), 4),
            "hv_top_rung_only": round(normalised_hypervolume([r.objectives for r in top], *box), 4),
            "promotions_done": sum(r.rung > 0 for r in rungs), "stopped": log.strip().splitlines()[-1:] or None,
            "pick": {"trial_id": pick.id, "genome": pick.genome, "f1": pick.f1, "rung": pick.rung,
                     "n_params": trial_params(pick), "why": why, "retrain_pick": cfg.retrain.pick},
            "trials": [{"id": r.id, "status": str(r.status), "genome": r.genome, "f1": r.f1, "f2": r.f2,
                        "rung": r.rung, "seconds": r.seconds} for r in rows]}


def work_units(path: Path) -> dict:
    """{(trial id, rung): (genome, f1, seconds)} of every finished unit of training in a run: each
    rung of a halving trial, or each whole trial of a plain search (rung None)."""
    with TrialStore(RunDir(path).trials_db) as st:
        trials = {r.id: r for r in st.rows()}
        rungs = st.rung_rows("done")
    if rungs:
        return {(r.trial_id, r.rung): (trials[r.trial_id].genome, r.f1, r.seconds) for r in rungs}
    return {(t.id, None): (t.genome, t.f1, t.seconds) for t in trials.values() if t.objectives}


def same_work(a: Path, b: Path) -> dict:
    """Seconds that two runs spent on identical units (same trial, rung and genome): a/b > 1 means the
    machine ran a slower than b. `same_f1` counts the units whose f1 also matches to 1e-6, the check
    that the training itself was the same."""
    ua, ub = work_units(a), work_units(b)
    keys = [k for k in ua if k in ub and ua[k][0] == ub[k][0] and ua[k][2] is not None and ub[k][2] is not None]
    sa, sb = sum(ua[k][2] for k in keys), sum(ub[k][2] for k in keys)
    same_f1 = sum(ua[k][1] is not None and ub[k][1] is not None and abs(ua[k][1] - ub[k][1]) < 1e-6 for k in keys)
    return {"a": str(a), "b": str(b), "units": len(keys), "same_f1": same_f1, "seconds_a": round(sa, 1),
            "seconds_b": round(sb, 1), "ratio_a_over_b": round(sa / sb, 3) if sb else None}


def same_genomes(halving: Path, plain: Path) -> dict:
    """A genome's first rung against its whole plain trial, over the genomes both searches trained
    (a shared initial design, repeats): the cost per genome at equal genomes, where the genome rate
    of whole searches also depends on which (how large) genomes each search went on to ask for."""
    first = {json.dumps(g, sort_keys=True): s for (tid, rung), (g, _, s) in work_units(halving).items() if rung == 0}
    whole = {json.dumps(g, sort_keys=True): s for (tid, rung), (g, _, s) in work_units(plain).items() if rung is None}
    keys = [k for k in first if k in whole and first[k] is not None and whole[k] is not None]
    sh, sp = sum(first[k] for k in keys), sum(whole[k] for k in keys)
    return {"genomes": len(keys), "first_rung_seconds": round(sh, 1), "plain_trial_seconds": round(sp, 1),
            "plain_over_first_rung": round(sp / sh, 2) if sh else None}


def mean_params(path: Path) -> int | None:
    """Mean parameter count of the genomes a search trained (what its genome rate is a rate of)."""
    with TrialStore(RunDir(path).trials_db) as st:
        n = [trial_params(r) for r in st.rows() if r.objectives]
    return round(sum(n) / len(n)) if n else None


def target_2(searches: dict, twins: list[tuple[str, str]], bar: float = 3.0) -> dict:
    """Genomes per trial-hour, halving over its plain twin: per pair and as the ratio of the means."""
    pairs = [{"halving": h, "plain": p, "ratio": round(searches[h]["genomes_per_hour"] / searches[p]["genomes_per_hour"], 2)}
             for h, p in twins]
    mh = sum(searches[h]["genomes_per_hour"] for h, _ in twins) / len(twins)
    mp = sum(searches[p]["genomes_per_hour"] for _, p in twins) / len(twins)
    return {"pairs": pairs, "mean_halving": round(mh, 1), "mean_plain": round(mp, 1),
            "ratio_of_means": round(mh / mp, 2), "bar": bar, "met": mh / mp >= bar}


def record_row(path: Path, cut: float, box) -> dict:
    trials = sorted(json.loads(path.read_text())["trials"], key=lambda t: t["id"])
    kept, t = [], 0.0
    for tr in trials:
        t += tr["seconds"] or 0
        if t > cut:
            break
        kept.append(tr)
    pts = [(tr["f1"], tr.get("f2") or math.log(tr["n_params"])) for tr in kept if tr.get("f1") is not None]
    hv = round(normalised_hypervolume(pts, *box), 4)
    secs = sum(tr["seconds"] or 0 for tr in kept)
    return {"genomes": len(kept), "done": len(pts), "top_rung": len(pts), "trial_seconds": round(secs, 1),
            "genomes_per_hour": round(len(kept) / secs * 3600, 1) if secs else None, "hv_highest_rung": hv,
            "hv_top_rung_only": hv, "cut_seconds": cut, "record": str(path)}


def arm_runs(records: list[str]) -> dict[str, dict]:
    """{"record:seed": per-case Dice} of every finished `nas_pick` run in the records; `RECORD@SEED`
    takes that seed's run only (e.g. a search's own model, when the record also holds other seeds)."""
    runs = {}
    for spec in records:
        path, _, only = spec.partition("@")
        for r in json.loads(Path(path).read_text()).get("results", {}).get("nas_pick", {}).get("runs", []):
            if r.get("per_case_dice") and (not only or int(r["seed"]) == int(only)):
                runs[f"{path}:{r['seed']}"] = r["per_case_dice"]
        if only and f"{path}:{int(only)}" not in runs:
            raise SystemExit(f"--arm: {path} has no finished nas_pick run with seed {only}")
    return runs


def picks_study(arms: dict[str, list[str]], against: str) -> dict:
    """Rule (3): each arm's retrained picks against the plain arm's, paired per test case."""
    from medseg_nas.bench.stats import compare

    runs = {name: arm_runs(recs) for name, recs in arms.items()}
    table = {}
    for name, rs in runs.items():
        dice = [float(sum(c["mean"] for c in r.values()) / len(r)) for r in rs.values()]
        table[name] = {"records": arms[name], "runs": len(rs), "test_mean_dice_per_run": [round(d, 4) for d in dice],
                       "test_mean_dice": round(sum(dice) / len(dice), 4) if dice else None}
    paired = compare({k: dict(enumerate(rs.values())) for k, rs in runs.items()}, against=against)
    for iv in paired.values():  # contains 0 or lies above it: its upper end is not below 0
        iv["passes_rule_3"] = bool(iv["mean"]["high"] >= 0)
    return {"against": against, "arms": table, "paired": paired,
            "rule": "per test case each arm's Dice averaged over its runs; paired difference arm - plain, 95 % "
                    "percentile bootstrap over cases; passes if the interval contains 0 or lies above it "
                    "(stated in docs/studies/halving.md before the eta-9 runs)"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="append", default=[], metavar="NAME=RUN_DIR")
    ap.add_argument("--record", action="append", default=[], metavar="NAME=FILE@SECONDS")
    ap.add_argument("--rungs-tau", default="")
    ap.add_argument("--arm", action="append", default=[], metavar="NAME=RECORD[@SEED][,RECORD...]",
                    help="whole_job_peers records whose nas_pick runs form one arm of rule (3)")
    ap.add_argument("--against", default="", help="the plain arm's NAME (with --arm)")
    ap.add_argument("--twins", action="append", default=[], metavar="HALVING:PLAIN",
                    help="two --run names, a halving search and its plain twin (target 2)")
    ap.add_argument("--speed", action="append", default=[], metavar="NAME=RUN_A:RUN_B",
                    help="seconds of the same work in two run directories")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    if not args.run:
        raise SystemExit("--run NAME=RUN_DIR: at least one search")
    runs = [r.split("=", 1) for r in args.run]
    b = json.loads(RunDir(runs[0][1]).front_json.read_text())["hypervolume_box"]
    box = (b["ideal"], b["reference"])
    doc = {"benchmark": "halving", "box": b, "searches": {n: {**run_row(Path(p), box), "run_dir": p} for n, p in runs}}
    for spec in args.record:
        name, _, rest = spec.partition("=")
        path, _, cut = rest.rpartition("@")
        doc["searches"][name] = record_row(Path(path), float(cut), box)
    if args.twins:
        twins = [tuple(t.split(":", 1)) for t in args.twins]
        dirs = dict(runs)  # a --record has no run directory to time its genomes in
        unknown = [n for t in twins for n in t if n not in dirs]
        if unknown or any(len(t) != 2 for t in twins):
            raise SystemExit(f"--twins HALVING:PLAIN must name two --run searches (unknown: {', '.join(unknown)})")
        doc["target_2"] = target_2(doc["searches"], twins)
        for pair in doc["target_2"]["pairs"]:
            h, p = Path(dirs[pair["halving"]]), Path(dirs[pair["plain"]])
            pair.update(mean_params_halving=mean_params(h), mean_params_plain=mean_params(p), same_genomes=same_genomes(h, p))
    if args.speed:
        doc["speed"] = {}
        for spec in args.speed:
            name, _, pair = spec.partition("=")
            a, _, b = pair.partition(":")
            doc["speed"][name] = same_work(Path(a), Path(b))
    if args.rungs_tau:
        doc["rungs_tau"] = {k: v["kendall"] for k, v in json.loads(Path(args.rungs_tau).read_text())["budgets"].items()}
    if args.arm:
        arms = {n: recs.split(",") for n, _, recs in (a.partition("=") for a in args.arm)}
        if args.against not in arms:
            raise SystemExit(f"--against must name one of the --arm arms ({', '.join(arms)})")
        doc["picks"] = picks_study(arms, args.against)
    atomic_write(Path(args.out), json.dumps(doc, indent=2, default=str))
    print(json.dumps(doc, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
