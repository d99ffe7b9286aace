"""The chosen network against its peers at equal wall-clock, on a whole-job run's own split (issue 13).

    python scripts/whole_job_peers.py runs/hippocampus_cpu \
        --out benchmarks/results/hippocampus_whole_job_peers.json [--only monai_dynunet:1,2]

Every network is trained exactly as `retrain` trained the chosen one: the run's config (augment,
batch, AdamW, poly schedule, patience), its training cases (train + validation minus the
monitor slice), best epoch chosen on the monitor slice, scored on the run's test split. What
differs is how long: each network trains for the **same CPU seconds** as the run's retrain
(`best/retrain.json` "seconds"):

- `nas_pick`      the run's chosen genome; seed 0 is the run's own model (not retrained), seeds
                  1, 2 are retrained for the retrain's seconds;
- `nas_pick_cell_emonas` (not in the default plan) the chosen genome built with the authors' cell
                  (`space.cell: emonas`), trained like the pick's retrained seeds: the cells at the
                  retrain's seconds;
- `nas_pick_light` (not in the default plan) the chosen genome's cell (inputs, ops, lr) one level
                  deeper at half the first-level filters (n_c + 1 up to 4, n_f - 1 down to 2: about
                  the pick's parameters) in the `residual_light` layout (a plain two-conv
                  full-resolution level): the cheaper-per-step space tried on the pick's cell;
- `monai_dynunet` DynUNet as nnU-Net's 3d_fullres planner would configure it for this spacing and
                  patch (medseg_nas.bench.peers `dynunet_plan`), seeds 0, 1, 2;
- `monai_unet`    MONAI UNet, the tutorials' 16-32-64-128-256 configuration, seed 0;
- `smallest`      `Genome.smallest` of the run's space (the trivial end of every front), seed 0;
- `small_unet`, `small_dynunet`, `small_segresnet` (not in the default plan; issue 27's controls):
                  MONAI UNet, DynUNet (nnU-Net's plan, fewer filters) and SegResNet, each at the
                  width whose parameter count is nearest the chosen network's
                  (medseg_nas.bench.peers `small_standard_networks`), e.g.
                  `--plan "small_unet:0,1,2;small_dynunet:0,1,2;small_segresnet:0,1,2"`;
- `trial_<id>`    with `--trials-from SUMMARY`: that trial's genome of the run's search (the run's
                  whole-job summary lists them), trained like the pick's retrained seeds.

Equal seconds: `Trainer.fit(seconds=...)`, whose poly schedule follows the clock and which stops
when the time left would not cover the final validation (train/trainer.py). Rows written before
it existed (the hippocampus record's) set their epochs from short calibration fits instead and
missed the seconds by -22% to +20%; their `calibration` entry says how they were set.

Across machines: `--rebuild CONFIG` rebuilds a run directory that is not here (a fresh checkout)
from the `--out` record and the config the run was made with: config, split and plan, and
best/retrain.json (genome, seconds). The rebuilt split must name the record's test cases and its
numbers of trained and monitor cases, or it stops (medseg_nas.bench.rebuilt_run). Seed 0, the run's
own model, stays the record's row. `--rebuild-from SUMMARY` rebuilds from the run's whole-job summary
instead (a run whose peers were never measured; its own model is then only in the summary).

Machines differ (up to ~2x between sessions on ACDC, docs/studies/acdc.md), and equal seconds are
equal compute only on the run's machine: before its first training, each invocation times a bare
training step of the pick here against the run's retrain seconds per step and writes both into the
record (`machine_speed`) and into every row it trains.

Resumable: each (network, seed) result is written to `--out` as soon as it finishes and a
rerun skips the ones already there. `paired_vs_pick`: the run's pick minus each network, per test
case with each network's seeds averaged, 95 % bootstrap over cases or, where the datalist groups
them (ACDC's two frames of a patient), whole patients (medseg_nas.bench.controls);
`paired_vs_retrained_pick` the same with only the pick's seeds retrained by this script, not the
run's own model, whose machine the peers did not share. Each pairing names its rows' bare pick
steps and their slowest/fastest ratio (`machine_spread`). Test metrics:
as `medseg-nas evaluate` computes them (back on each test file's original grid;
medseg_nas.bench.scoring), Dice and HD95 (mm) per class — the same function for every row, the
run's own model included.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from medseg_nas.bench.controls import paired_vs_pick
from medseg_nas.bench.data import groups_of
from medseg_nas.bench.network_cost import speed_against_run
from medseg_nas.bench.peers import network_specs, trial_specs
from medseg_nas.bench.rebuilt_run import own_model_rows, rebuild_run_dir
from medseg_nas.bench.scoring import EPOCH_CAP, fit_and_score, own_model_row, seed_summary
from medseg_nas.jsonio import atomic_write
from medseg_nas.rundir import RunDir
from medseg_nas.stages.retrain import retrain_data
from medseg_nas.train import Trainer

DEFAULT_PLAN = "nas_pick:0,1,2;monai_dynunet:0,1,2;monai_unet:0;smallest:0"


def parse_plan(text: str) -> list[tuple[str, int]]:
    """'net:0,1;net2:0' -> [(net, 0), (net, 1), (net2, 0)] in that order."""
    out = []
    for part in filter(None, text.split(";")):
        name, _, seeds = part.partition(":")
        out += [(name.strip(), int(s)) for s in (seeds or "0").split(",")]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", help="a finished `medseg-nas run` directory (best/retrain.json, best/model.pt)")
    ap.add_argument("--plan", default=DEFAULT_PLAN, help=f"networks and seeds, in order (default {DEFAULT_PLAN!r})")
    ap.add_argument("--peer-lr", type=float, default=1e-3, help="AdamW learning rate of the MONAI peers")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rebuild", metavar="CONFIG",
                    help="run_dir is not here: rebuild it from the --out record and CONFIG (the run's config)")
    ap.add_argument("--rebuild-from", metavar="RECORD",
                    help="with --rebuild: the record to rebuild from when it is not --out (e.g. the run's "
                         "whole-job summary, for a run whose peers were never measured)")
    ap.add_argument("--trials-from", metavar="SUMMARY",
                    help="the run's whole-job summary: its trials' genomes become networks `trial_<id>`")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    out_path = Path(args.out)
    if args.rebuild and not RunDir(args.run_dir).config_yaml.is_file():
        source = Path(args.rebuild_from or out_path)
        if not source.is_file():
            raise SystemExit(f"--rebuild needs the record {source} to rebuild {args.run_dir} from")
        rebuild_run_dir(source, args.rebuild, args.run_dir)
        print(f"rebuilt {args.run_dir} from {source} and {args.rebuild} (split checked against the record)", flush=True)
    run = RunDir(args.run_dir)
    cfg = run.config()
    info = json.loads(run.retrain_json.read_text())
    seconds = float(info["seconds"])
    doc = json.loads(out_path.read_text()) if out_path.is_file() else {}
    if doc and doc.get("run_model_seconds") != seconds:
        raise SystemExit(f"{out_path} belongs to another retrain ({doc.get('run_model_seconds')} s, not {seconds} s)")
    bundle, plan = retrain_data(cfg, run.path, int(cfg.train.seed))
    doc = doc or {"benchmark": "whole_job_peers", "run_dir": str(run.path), "run_model_seconds": seconds,
                  "retrain_budget": [cfg.retrain.epochs, cfg.retrain.iters_per_epoch], "peer_lr": args.peer_lr,
                  "n_trained_cases": len(bundle.ids["train"]), "n_monitor": len(bundle.ids["val"]),
                  "n_test": len(bundle.ids["test"]),
                  "patch_size": list(plan.patch_size), "target_spacing": list(plan.target_spacing),
                  "machine": {"cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
                              "python": platform.python_version()},
                  "results": {}}
    specs = network_specs(cfg, plan, info, args.peer_lr)
    if args.trials_from:
        specs.update(trial_specs(json.loads(Path(args.trials_from).read_text())))
    groups = groups_of(cfg.data.root)

    def save(doc: dict) -> None:
        """The record with its paired figures (pick - each network, over patients where the datalist
        groups frames), rewritten after every result so a stopped run leaves them current."""
        doc["paired_vs_pick"] = paired_vs_pick(doc["results"], groups)
        doc["paired_vs_retrained_pick"] = paired_vs_pick(doc["results"], groups, retrained_only=True)
        atomic_write(out_path, json.dumps(doc, indent=2, default=str))

    speed = {}  # measured once, before the first row this invocation trains

    def machine_speed() -> dict:
        if not speed:
            own = own_model_rows(doc)
            epochs = info.get("epochs_run") or (own[0].get("epochs") if own else None)
            pick = Trainer(cfg.train, bundle, plan, device=args.device, progress=False, cell=cfg.space.cell)
            speed.update(speed_against_run(pick, specs["nas_pick"][0], seconds,
                                           epochs * cfg.retrain.iters_per_epoch if epochs else None),
                         when=time.strftime("%Y-%m-%dT%H:%M:%S"))
            doc.setdefault("machine_speed", []).append(speed)
            slower = speed.get("here_slower_by_at_least")
            print(f"the pick's bare step here {speed['pick_bare_step_s_here']} s, the run's at most "
                  f"{speed.get('run_step_s_at_most')} s" + (f": this machine is at least {slower}x slower, so equal "
                  "seconds give peers less compute than the pick had" if slower and slower > 1.2 else ""), flush=True)
        return speed

    for name, seed in parse_plan(args.plan):
        if name not in specs:
            raise SystemExit(f"--plan: unknown network {name!r} (known: {', '.join(specs)})")
        entry = doc["results"].setdefault(name, {"runs": [], **specs[name][2]})
        if any(r["seed"] == seed for r in entry["runs"]):
            print(f"{name} seed {seed}: already in {out_path}, skipped", flush=True)
            continue
        spec, fn, _ = specs[name]
        trainer = Trainer(cfg.train, bundle, plan, device=args.device, progress=False, network_fn=fn,
                          cell=cfg.space.cell)
        own_model = name == "nas_pick" and seed == int(info.get("seed", 0))
        here = None if own_model else machine_speed()  # timed before the clock of this row starts
        t0 = time.perf_counter()
        if own_model:
            if info.get("rebuilt_from"):
                raise SystemExit(f"nas_pick seed {seed} is the run's own model, which a rebuilt run directory does not hold")
            row = own_model_row(run, trainer, spec, plan, bundle, info)
        else:
            r, row = fit_and_score(trainer, spec, seed, plan, bundle, epochs=EPOCH_CAP,
                                   iters_per_epoch=cfg.retrain.iters_per_epoch, patience=cfg.retrain.patience,
                                   seconds=seconds)
            row.update(epochs=r.epochs_run, epochs_run=r.epochs_run, steps=r.timing.get("steps"),
                       calibration={"method": "clock", "seconds": seconds}, machine_speed=here)
        row["wall_s"] = round(time.perf_counter() - t0, 1)
        entry["runs"].append(row)
        entry["n_params"] = row.get("n_params") or entry.get("n_params")
        entry.update(seed_summary(entry["runs"]))
        save(doc)
        print(f"{name:14s} seed {seed} {row['status']:6s} {(row.get('n_params') or 0) / 1e6:6.3f}M "
              f"epochs {row.get('epochs')}  train {row.get('train_s')} s (target {seconds:.0f})  "
              f"test {row.get('test_mean_dice', float('nan')):.4f}  hd95 {row.get('test_mean_hd95_mm', float('nan')):.2f} mm",
              flush=True)
    if doc["results"]:  # also with every row skipped: a record written before the paired figures existed
        save(doc)
    for key, who in (("paired_vs_pick", "nas_pick"), ("paired_vs_retrained_pick", "nas_pick retrained")):
        for name, pair in doc.get(key, {}).items():
            for figure in ("mean", "mean_largest_component"):
                if figure in pair:
                    iv = pair[figure]
                    print(f"{who} - {name} ({figure}): {iv['mean']:+.4f} [{iv['low']:+.4f}, {iv['high']:+.4f}] "
                          f"over {iv.get('n_groups', iv['n_cases'])} {iv.get('unit', 'case')}s", flush=True)
            spread = pair.get("machine_spread")
            print(f"  its rows' bare pick steps (s): {pair.get('bare_step_s')}; slowest / fastest "
                  + (f"{spread}x" if spread else "unknown (a row was not timed)"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
