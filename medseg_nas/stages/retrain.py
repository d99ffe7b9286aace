"""`medseg-nas retrain RUN_DIR [--pick knee|best|smallest|<trial id>]`: the chosen network, trained
with the full budget.

Pick (among the run's `done` trials in `trials.sqlite`):
    knee      the knee point of the Pareto front of (f1, f2) (search.archive.knee_point)
    best      the lowest f1 (expected segmentation error), ties → fewer parameters
    smallest  the fewest parameters (lowest f2), ties → lower f1
    <id>      that trial id

The genome (its learning rate included) is trained from scratch by the same Trainer as the
search, with `retrain.epochs`, `retrain.iters_per_epoch` and `retrain.patience`, on the train
cases plus, with `retrain.include_val` (default), the validation cases except a monitor slice
(`retrain.monitor_fraction` of them, at least one): the curve and the best epoch are measured on
cases the retrain never trains on (`monitor_split`). With `monitor_fraction: 0` every validation
case is trained on and retrain.json says the curve is measured on training data. The test cases
stay held out for `evaluate`.

Writes best/model.pt (medseg_nas.model_io format), best/genome.json, best/history.json (the
TrialResult without weights) and best/retrain.json (what was picked and why).

The retrain starts from `train.seed`, the seed the trials trained with, and says so when an
override moves it off the picked trial's: the trial's ranking was measured to carry to a retrain
at its own seed only (`seed_note`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Callable

from medseg_nas.config import RETRAIN_PICKS, add_overrides_argument
from medseg_nas.errors import MedsegError
from medseg_nas.model_io import save_model
from medseg_nas.nas.run_lock import run_dir_lock
from medseg_nas.rundir import RunDir
from medseg_nas.space import Genome
from medseg_nas.trial_store import TrialRow
from medseg_nas.results import COST_CAPS, TrialStatus, cost_caps
from medseg_nas.search.archive import knee_point, pareto_front



def trial_params(row: TrialRow) -> int:
    """A done trial's parameter count (older stores have only f2 = log(parameters))."""
    return int(row.n_params) if row.n_params else int(round(math.exp(row.f2)))


def _num(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:,.1f}"


def pick_trial(rows: list[TrialRow], pick: str, caps: dict | int = 0) -> tuple[TrialRow, str]:
    """The chosen done trial and a one-line reason. `caps` (cost_caps; an int is max_params) limit
    knee/best/smallest to the trials whose parameters, MACs and measured latency are within them."""
    if isinstance(caps, (int, float)):
        caps = {"max_params": float(caps)}
    elif not isinstance(caps, dict):
        caps = cost_caps(caps)  # a RetrainConfig
    done = [r for r in rows if r.status == TrialStatus.DONE and r.objectives is not None]
    capped = []
    for key, kind, unit in COST_CAPS:
        limit = caps.get(key, 0) or 0
        if limit <= 0 or pick not in RETRAIN_PICKS or not done:
            continue
        costs = {r.id: r.cost(kind) for r in done}
        within = [r for r in done if costs[r.id] is not None and costs[r.id] <= limit]
        if not within:
            known = [c for c in costs.values() if c is not None]
            least = f"the smallest is {_num(min(known))}" if known else f"no trial recorded its {unit}"
            raise MedsegError(f"no done trial has at most retrain.{key} = {_num(limit)} {unit} ({least}); "
                              "raise the cap or set it to 0")
        capped.append(f"<= {_num(limit)} {unit}")
        done = within
    capped = f" among the {len(done)} of {len([r for r in rows if r.status == TrialStatus.DONE])} trials with " \
        + " and ".join(capped) if capped else ""
    if pick not in RETRAIN_PICKS:
        try:
            tid = int(pick)
        except ValueError:
            raise MedsegError(f"--pick must be one of {', '.join(RETRAIN_PICKS)} or a trial id, got {pick!r}") from None
        for r in rows:
            if r.id == tid:
                if r.status != TrialStatus.DONE:
                    raise MedsegError(f"trial {tid} is {r.status}, not done: pick another")
                return r, f"trial {tid} (asked for by id)"
        raise MedsegError(f"there is no trial {tid} in the store (ids {min(r.id for r in rows)}..{max(r.id for r in rows)})"
                          if rows else f"there is no trial {tid}: the store is empty")
    if not done:
        raise MedsegError("no finished (done) trial in the run: nothing to retrain; run or resume the search")
    F = [(r.f1, r.f2) for r in done]
    if pick == "best":
        i = min(range(len(done)), key=lambda i: (F[i][0], F[i][1], done[i].id))
        return done[i], f"lowest f1 = {F[i][0]:.4f}{capped}"
    if pick == "smallest":
        i = min(range(len(done)), key=lambda i: (F[i][1], F[i][0], done[i].id))
        return done[i], f"lowest cost (f2 = {F[i][1]:.3f}){capped}"
    front = pareto_front(F)
    i = knee_point(F)
    return done[i], f"knee of the {len(front)}-point Pareto front (f1 = {F[i][0]:.4f}, f2 = {F[i][1]:.3f}){capped}"


def monitor_split(train: list[str], val: list[str], include_val: bool, monitor_fraction: float) -> tuple[list[str], list[str], bool]:
    """(cases trained on, cases the curve and best epoch are measured on, monitor held out?).

    The monitor slice is the first cases of the (already shuffled) validation list, so it is
    the same for every retrain of a run.
    """
    train, val = list(train), list(val)
    if not include_val:
        return train, val or train[:1], bool(val)
    if not val:
        return train, train[:1], False
    n_monitor = min(len(val), max(1, round(len(val) * float(monitor_fraction)))) if monitor_fraction > 0 else 0
    if n_monitor == 0:
        return train + val, val, False
    return train + val[n_monitor:], val[:n_monitor], True


def retrain_augment(cfg) -> str:
    """The retrain's augmentation: `retrain.augment`, else the search's `data.augment`."""
    return cfg.retrain.augment or cfg.data.augment


def retrain_data(cfg, run_dir: Path | None, seed: int):
    """The retrain's datasets (trained cases, monitor slice as `val`, the run's test split) and plan:
    the one recipe the retrain and the equal-budget peer benchmark both train with. Without a run
    directory, the split the config draws (what a new run of it would save)."""
    from medseg_nas import data as mdata

    files = RunDir(run_dir).data_files() if run_dir is not None else None
    data = mdata.load_data(cfg.data.root, cfg.data, files=files, build=False)
    split = data.split
    train_ids, monitor_ids, _ = monitor_split(split.train, split.val, cfg.retrain.include_val,
                                              cfg.retrain.monitor_fraction)
    rsplit = mdata.Split(train=train_ids, val=monitor_ids, test=list(split.test),
                         info={**split.info, "retrain_include_val": cfg.retrain.include_val})
    bundle = mdata.build_datasets(data.datalist, rsplit, data.plan,
                                  dataclasses.replace(cfg.data, augment=retrain_augment(cfg)))
    bundle.reseed(seed)
    return bundle, data.plan


def default_fit(cfg, run_dir: Path, genome: Genome, seed: int, device: str | None, progress: bool):
    """Train `genome` with the run's data (the search's data chain, split and plan) and the
    Trainer; returns (TrialResult, DataPlan)."""
    from medseg_nas.train import Trainer

    run = RunDir(run_dir)
    bundle, plan = retrain_data(cfg, run_dir, seed)
    trainer = Trainer(cfg.train, bundle, plan, device=device or cfg.train.device,
                      log_dir=run.tensorboard / "retrain", progress=progress, cell=cfg.space.cell)
    result = trainer.fit(genome, seed=seed, epochs=cfg.retrain.epochs, iters_per_epoch=cfg.retrain.iters_per_epoch,
                         patience=cfg.retrain.patience, seconds=cfg.retrain.seconds_budget)
    return result, plan


def seed_note(trial_id: int, trial_seed: int, seed: int) -> str:
    """Why a retrain off its trial's seed is worth a line: 90 trials' validation Dice ranked a 400-step
    retrain from the same initial weights above parameter count (τ 0.555 vs 0.263), but retrains from
    other weights no better than it (seeds 1 and 2; docs/studies/search_strategies.md, "Result of the
    own-seed test"). Not an error: seed studies retrain at other seeds on purpose."""
    return (f"  note: train.seed is {seed}, but trial {trial_id} trained at seed {trial_seed}; the search ranked its "
            f"networks from seed {trial_seed}'s initial weights, and at 400-step retrains that ranking was measured not "
            f"to carry to other seeds (set train.seed={trial_seed} to retrain the start it judged)")


def retrain(
    run_dir: str | Path,
    pick: str | None = None,
    overrides: list[str] | None = None,
    force: bool = False,
    device: str | None = None,
    progress: bool = True,
    fit_fn: Callable | None = None,
    log=print,
    cfg=None,
) -> dict:
    """Pick, retrain and save, holding the run directory's lock; returns best/retrain.json's contents.

    `cfg` (a Config) replaces the run's saved config.yaml (the pipeline passes its own, so
    `run --set retrain.epochs=...` applies); `fit_fn(cfg, run_dir, genome, seed, device, progress)
    -> (TrialResult, DataPlan)` replaces the Trainer (tests).
    """
    with run_dir_lock(run_dir):
        return _retrain(Path(run_dir), pick, overrides, force, device, progress, fit_fn, log, cfg)


def _retrain(run_dir: Path, pick, overrides, force, device, progress, fit_fn, log, cfg) -> dict:
    run = RunDir(run_dir)
    cfg = cfg if cfg is not None else run.config(overrides)
    pick = str(pick or cfg.retrain.pick)
    if run.model_pt.exists() and not force:
        raise MedsegError(f"{run.model_pt} already exists; use --force to retrain and replace it")
    if not run.trials_db.is_file():
        raise MedsegError(f"{run.trials_db} does not exist; run `medseg-nas search` first")
    row, why = pick_trial(run.trial_rows(), pick, cost_caps(cfg.retrain))
    genome = Genome.from_dict(row.genome)
    seed = int(cfg.train.seed)
    split = run.split() if run.split_json.is_file() else None  # the search writes it; a fit_fn may not need it
    trained, monitor, held_out = (monitor_split(split.train, split.val, cfg.retrain.include_val, cfg.retrain.monitor_fraction)
                                  if split is not None else ([], [], None))
    log(f"retrain: trial {row.id} — {why}\n  genome {genome.describe()}\n"
        f"  budget {cfg.retrain.epochs} epochs × {cfg.retrain.iters_per_epoch} iterations"
        f"{f' (at most {cfg.retrain.seconds_budget:.0f} s)' if cfg.retrain.seconds_budget else ''}, patience {cfg.retrain.patience}, "
        f"augment {retrain_augment(cfg)}, {len(trained)} training cases ({'train+val' if cfg.retrain.include_val else 'train'}), curve on {len(monitor)} "
        f"{'held-out' if held_out else 'TRAINING'} case(s)")
    if row.seed is not None and int(row.seed) != seed:
        log(seed_note(row.id, int(row.seed), seed))
    t0 = time.time()
    result, plan = (fit_fn or default_fit)(cfg, run_dir, genome, seed, device, progress)
    if not result.ok:
        raise MedsegError(f"retraining trial {row.id} failed: {result.error}")
    state = result.state_dict
    if state is None:
        raise MedsegError("the trainer returned no weights (state_dict) for the retrained network")
    res = result.to_dict()
    plan_d = plan.to_dict() if hasattr(plan, "to_dict") else dict(plan)
    info = {
        "trial_id": row.id,
        "pick": pick,
        "max_params": cfg.retrain.max_params,
        "max_macs": cfg.retrain.max_macs,
        "max_latency_ms": cfg.retrain.max_latency_ms,
        "reason": why,
        "genome": genome.to_dict(),
        "search_objectives": {"f1": row.f1, "f2": row.f2, "cost": cfg.objectives.cost},
        "search_costs": {"macs": row.macs, "act_mem_mb": row.act_mem_mb, "latency_ms": row.latency_ms},
        "n_params": result.n_params or trial_params(row),
        "seed": seed,
        "trial_seed": row.seed,  # the seed the picked trial trained at (seed_note when they differ)
        "include_val": cfg.retrain.include_val,
        "monitor_fraction": cfg.retrain.monitor_fraction,
        "augment": retrain_augment(cfg),
        "monitor_cases": monitor,
        "monitor_held_out": held_out,  # False: val_dice / e_max are measured on training cases
        "epochs_budget": cfg.retrain.epochs,
        "seconds_budget": cfg.retrain.seconds_budget,
        "iters_per_epoch": cfg.retrain.iters_per_epoch,
        "epochs_run": res.get("epochs_run"),
        "e_max": res.get("e_max"),
        "val_dice": res.get("val_dice"),
        "train_dice": res.get("train_dice"),
        "seconds": round(time.time() - t0, 1),
    }
    run.best.mkdir(parents=True, exist_ok=True)
    for stale in run.model_derived():  # made from an older model
        stale.unlink(missing_ok=True)
    save_model(run.model_pt, state, genome, plan_d["in_channels"], plan_d["n_classes"], plan_d.get("network_plan"),
               plan_d, plan_d.get("labels"), extra=info, cell=cfg.space.cell)
    run.genome_json.write_text(json.dumps(genome.to_dict(), indent=2))
    run.history_json.write_text(json.dumps(res, indent=2, default=str))
    run.retrain_json.write_text(json.dumps(info, indent=2, default=str))
    run.record_retrain_config(cfg)
    if split is not None:  # what the model applies to its output, decided on the monitor cases
        from medseg_nas.stages.postprocess_decision import decide_postprocess

        try:
            info["postprocess"] = decide_postprocess(run_dir, cfg, device=device or "auto", log=log)
        except MedsegError as exc:  # the trained model is kept; `evaluate` decides again
            log(f"warning: post-processing not decided ({exc}); `medseg-nas evaluate` will try again")
        run.retrain_json.write_text(json.dumps(info, indent=2, default=str))
    vd = info["val_dice"]
    log(f"retrain: done in {info['seconds']:.0f}s, {info['epochs_run']} epochs, best epoch {info['e_max']}, "
        f"val Dice {vd if vd is None else round(float(vd), 4)} → {run.model_pt}")
    return info


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="run directory of a finished (or stopped) search")
    p.add_argument("--pick", default=None, help="knee | best | smallest | <trial id> (default: retrain.pick)")
    add_overrides_argument(p, "retrain.epochs=50")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default: train.device)")
    p.add_argument("--force", action="store_true", help="replace an existing best/model.pt")


def main(args: argparse.Namespace) -> int:
    from medseg_nas.preflight import preflight

    run = RunDir(args.run_dir)
    cfg = run.config(args.overrides)
    preflight(cfg, ["retrain"], str(run.config_yaml), device=args.device, pick=args.pick)
    retrain(args.run_dir, args.pick, args.overrides, force=args.force, device=args.device, cfg=cfg)
    return 0
