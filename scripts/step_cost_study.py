"""Which of the search's f2 costs ranks a network's CPU training step: parameters, MACs or latency?

    python scripts/step_cost_study.py runs/acdc_cpu --record benchmarks/results/acdc_whole_job_90ep.json \
        --out benchmarks/results/acdc_step_cost.json

Networks: every trial genome of the record's search (its f1 and trial seconds on the run's machine
beside it) and the run's peers (scripts/whole_job_peers.py's networks: DynUNet as nnU-Net plans it,
MONAI UNet, and the standard networks sized to the pick), built on the run's plan. Per network:
parameters, MACs of one patch, the median CPU latency of one median-shaped volume (the search's
`latency` cost) and the seconds of a bare training step as the Trainer lays it out (one warm-up,
then `--steps` timed). Then Kendall tau of each cost against the step, with a bootstrap over
networks (medseg_nas.bench.step_cost). Run it alone: it times steps. Resumable: a network already
in --out is skipped (delete --out to time again).

`--sample N --set KEY=VALUE ...`: N genomes drawn at random (seed `--sample-seed`) from the run's
space as the overrides change it, built in its `space.cell`, as rows `sample_<k>` (kind "sample"):
what a changed space costs per step before a search runs in it, e.g.
`--sample 20 --set space.cell=residual_light --set "space.n_f=[2]" --set "space.n_c=[2,3]"`.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from medseg_nas.bench.peers import network_specs, trial_specs
from medseg_nas.bench.step_cost import cost_row, seconds_per_gmac, tau_table
from medseg_nas.data import DataPlan
from medseg_nas.jsonio import atomic_write
from medseg_nas.rundir import RunDir
from medseg_nas.space import Genome, SearchSpace
from medseg_nas.space.network import NetworkSpec


def architecture(g: Genome) -> str:
    """A genome without its learning rate: two genomes that differ only in lr cost the same."""
    return json.dumps({k: v for k, v in g.to_dict().items() if k != "lr"}, sort_keys=True)


def networks(run: RunDir, cfg, plan, record: dict) -> list[tuple[str, object, dict]]:
    """(name, build, extra) per distinct network: the record's trial genomes (bench.peers.trial_specs),
    then the peers; a repeated architecture once."""
    info = json.loads(run.retrain_json.read_text())
    spec = NetworkSpec.of(plan, cfg.space.cell)
    trials = {t["id"]: t for t in record.get("trials", [])}
    pick_id = record.get("chosen", {}).get("trial_id")
    out, seen = [], set()
    for name, (s, fn, extra) in {**trial_specs(record), **network_specs(cfg, plan, info, 1e-3)}.items():
        if not isinstance(s, Genome):
            out.append((name, lambda f=fn: f(None), {"kind": "peer", "config": extra.get("config")}))
            continue
        key = architecture(s) + (extra.get("cell") or "")  # a genome in another cell is another network
        if key in seen:
            continue
        seen.add(key)
        if name.startswith("trial_"):
            t = trials[extra["trial_id"]]
            row = {"kind": "trial", "f1": t.get("f1"), "run_trial_s": t.get("seconds"), "genome": s.to_dict(),
                   "is_pick": t["id"] == pick_id}
        else:
            row = {"kind": "genome", "genome": s.to_dict(), **({"cell": extra["cell"]} if "cell" in extra else {})}
        out.append((name, lambda g=s, f=fn: (f or spec.build)(g), row))
    return out


def sampled(cfg, plan, n: int, seed: int) -> list[tuple[str, object, dict]]:
    """`n` distinct random genomes of `cfg`'s space in its cell: rows `sample_<k>` (kind "sample")."""
    space, spec = SearchSpace.from_config(cfg.space), NetworkSpec.of(plan, cfg.space.cell)
    rng, out, seen = np.random.default_rng(seed), [], set()
    for _ in range(100 * n):
        if len(out) == n:
            break
        g = Genome.random(rng, space)
        if architecture(g) in seen:
            continue
        seen.add(architecture(g))
        out.append((f"sample_{len(out)}", lambda g=g: spec.build(g),
                    {"kind": "sample", "genome": g.to_dict(), "cell": cfg.space.cell}))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", help="a run directory (config.yaml, plan.json, best/retrain.json; a rebuilt one will do)")
    ap.add_argument("--record", required=True, help="the run's whole-job summary (its trials' genomes)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=4, help="timed training steps per network (after one warm-up)")
    ap.add_argument("--latency-runs", type=int, default=3, help="timed volumes per latency (after one warm-up)")
    ap.add_argument("--only", default="", help="comma-separated names to measure (default: all)")
    ap.add_argument("--sample", type=int, default=0, help="also cost N random genomes of the (overridden) space")
    ap.add_argument("--sample-seed", type=int, default=0)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="config override for --sample's space, e.g. --set space.cell=residual_light")
    args = ap.parse_args(argv)

    run = RunDir(args.run_dir)
    cfg = run.config()
    plan = DataPlan.from_dict(json.loads(run.plan_json.read_text()))
    record = json.loads(Path(args.record).read_text())
    out_path = Path(args.out)
    doc = json.loads(out_path.read_text()) if out_path.is_file() else {
        "benchmark": "step_cost", "run_dir": str(run.path), "record": args.record,
        "patch_size": list(plan.patch_size), "batch_size": int(cfg.train.batch_size),
        "volume_shape": list(plan.median_shape), "steps_timed": args.steps, "latency_runs": args.latency_runs,
        "machine": {"cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "python": platform.python_version()}, "rows": []}
    done = {r["name"] for r in doc["rows"]}
    wanted = {w for w in args.only.split(",") if w}
    nets = networks(run, cfg, plan, record)
    if args.sample:
        nets += sampled(run.config(args.overrides), plan, args.sample, args.sample_seed)
    todo = [n for n in nets if n[0] not in done and (not wanted or n[0] in wanted)]
    for k, (name, build, extra) in enumerate(todo, 1):
        t0 = time.perf_counter()
        row = {**cost_row(name, build, cfg.train, plan, args.steps, args.latency_runs), **extra}
        row["wall_s"] = round(time.perf_counter() - t0, 1)
        doc["rows"].append(row)
        doc["taus"] = {"all_vs_step": tau_table(doc["rows"]),
                       "trials_vs_step": tau_table([r for r in doc["rows"] if r["kind"] == "trial"]),
                       "trials_vs_run_trial_s": tau_table([r for r in doc["rows"] if r["kind"] == "trial"],
                                                          target="run_trial_s", keys=("n_params", "macs", "latency_ms", "step_s")),
                       **({"samples_vs_step": tau_table([r for r in doc["rows"] if r["kind"] == "sample"])}
                          if sum(r["kind"] == "sample" for r in doc["rows"]) > 2 else {})}
        doc["seconds_per_gmac"] = seconds_per_gmac(doc["rows"])
        atomic_write(out_path, json.dumps(doc, indent=2, default=str))
        print(f"[{k}/{len(todo)}] {name:16s} {row['n_params'] / 1e6:7.3f} M  {row['macs'] / 1e9:7.2f} GMACs  "
              f"latency {row['latency_ms']} ms  step {row['step_s']:.3f} s  ({row['wall_s']} s)", flush=True)
    for key, table in doc.get("taus", {}).items():
        print(key, json.dumps(table), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
