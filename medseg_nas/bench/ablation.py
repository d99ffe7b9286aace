"""The retrain ablation's variants (one change each to the record's recipe) and one variant's
equal-seconds fit, apart from the command line that runs and records them (scripts/retrain_ablation.py)."""

from __future__ import annotations

import time
from pathlib import Path

from medseg_nas.bench.rebuilt_run import own_model_rows
from medseg_nas.bench.scoring import EPOCH_CAP, fit_and_score
from medseg_nas.bench.stats import compare, per_case_by
from medseg_nas.config import load_config
from medseg_nas.space import OPS, Genome
from medseg_nas.stages.retrain import retrain_augment, retrain_data
from medseg_nas.train import Trainer

# name -> (config overrides, genome overrides, what it tests[, epochs: the retrain's step budget
# (epochs x retrain.iters_per_epoch) instead of its seconds; "retrain": the config's retrain.epochs])
VARIANTS: dict[str, tuple] = {
    "base": ([], {}, "the retrain as the run did it, on the clock schedule (seed control)"),
    "patch_nnunet": (["data.patch_size=[40,56,40]"], {},
                     "nnU-Net's planned patch for this task (ours is planned smaller)"),
    "augment_full": (["retrain.augment=full"], {}, "flips + intensity + affine (rotation, scaling) instead of light"),
    "augment_light": (["retrain.augment=light"], {},
                      "flips + intensity only: the control for a record whose retrain used full augmentation"),
    "augment_full_40x50": (["retrain.augment=full"], {}, "full augmentation at the run's step budget, not its seconds",
                           40),
    "n_f5": ([], {"n_f": 5}, "twice the filters at every level (outside the space: n_f 3..4)"),
    "n_c3": ([], {"n_c": 3}, "one more resolution level (outside the space: n_c 2)"),
    "n_c3_n_f3": ([], {"n_c": 3, "n_f": 3}, "one more level at half the filters: depth at about equal parameters"),
    # the authors' cell against ours at the config's retrain step budget (issue 26), not the clock
    "base_steps": ([], {}, "our residual cell at the config's retrain step budget (control of cell_emonas_steps)",
                   "retrain"),
    "cell_emonas_steps": (["space.cell=emonas"], {}, "the authors' cell (EMONASArch.py) at the config's retrain step "
                          "budget", "retrain"),
    # 60 against 90 epochs on one genome at a step budget, not the clock (issue 26; ACDC's config: 90 x 50 steps)
    "base_60ep_steps": ([], {}, "our residual cell at 60 x retrain.iters_per_epoch steps: with base_steps, "
                        "60 against the config's epochs on one genome, whatever the machine's speed", 60),
    # the pick's topology with every op swapped to one family, same kernel sizes (issue 26: does the mix matter?)
    "ops_2d": ([], lambda g: {"ops": swap_ops(g["ops"], "conv2d")}, "every op k x k x 1 (2D), the pick's kernel sizes"),
    "ops_p3d": ([], lambda g: {"ops": swap_ops(g["ops"], "p3d")}, "every op pseudo-3D, the pick's kernel sizes"),
    "ops_3d": ([], lambda g: {"ops": swap_ops(g["ops"], "conv3d")},
               "every op k x k x k (3D), the pick's kernel sizes capped at 5 (the space's largest 3D op)"),
    "ops_3d3": ([], lambda g: {"ops": swap_ops(g["ops"], "conv3d", 3)},
                "every op 3 x 3 x 3 (3D): the cheapest 3D op, a standard 3D U-Net's kernel"),
}


def swap_ops(ops: list[str], kind: str, k: int | None = None) -> list[str]:
    """Each op as `kind` with its own kernel size (or k), capped at the largest kernel the space has
    for `kind` (3D: 5); identity and 1x1x1 ops stay as they are."""
    largest = max(int(o.partition("_")[2]) for o in OPS if o.startswith(f"{kind}_"))
    out = []
    for op in ops:
        base, _, size = op.partition("_")
        keep = base == "identity" or size in ("", "1")
        out.append(op if keep else f"{kind}_{min(int(k or size), largest)}")
    return out


def genome_variant(record: dict, changes) -> Genome:
    """The record's genome with `changes` (a dict, or a function of the genome dict returning one)."""
    g = record["chosen"]["genome"]
    return Genome.from_dict({**g, **(changes(g) if callable(changes) else changes)})


def record_augment(record: dict) -> str:
    """The augmentation the record's retrain used: the control every variant changes one thing of,
    whatever the config's retrain.augment says today (records before retrain.augment: data.augment)."""
    data = record["data"]
    return data.get("retrain_augment") or data["augment"]


def run_variant(config: str, record: dict, name: str, seed: int, work: Path, device: str,
                seconds: float | None = None) -> dict:
    overrides, changes, why, *steps = VARIANTS[name]
    cfg = load_config(config, [f"retrain.augment={record_augment(record)}", *overrides])
    run_dir = work / name
    run_dir.mkdir(parents=True, exist_ok=True)
    bundle, plan = retrain_data(cfg, run_dir, seed)
    if sorted(bundle.ids["test"]) != sorted(record["data"]["test_ids"]):
        raise SystemExit(f"{name}: the rebuilt test split is not the record's (config or dataset changed)")
    genome = genome_variant(record, changes)
    seconds = None if steps else float(seconds or record["retrain"]["seconds"])
    if steps and steps[0] == "retrain":  # the config's own retrain epochs
        steps = [cfg.retrain.epochs]
    trainer = Trainer(cfg.train, bundle, plan, device=device, progress=False, cell=cfg.space.cell)
    t0 = time.perf_counter()
    r, row = fit_and_score(trainer, genome, seed, plan, bundle, epochs=steps[0] if steps else EPOCH_CAP,
                           iters_per_epoch=cfg.retrain.iters_per_epoch, patience=cfg.retrain.patience,
                           seconds=seconds)
    row.update(variant=name, why=why, overrides=overrides, genome=genome.to_dict(), describe=genome.describe(),
               patch_size=list(plan.patch_size), augment=retrain_augment(cfg), epochs_run=r.epochs_run,
               steps=r.timing.get("steps"), target_s=seconds, wall_s=round(time.perf_counter() - t0, 1))
    return row


def paired_vs_run_model(rows: list[dict], peers_doc: dict, groups: dict[str, str] | None = None) -> dict:
    """{variant: variant - the run's own model} per figure, from a whole_job_peers record of the same
    run (its `nas_pick` row with a `source`: the model the run trained, not a retrain). `base`
    against the base at the run's own seconds is a seed-to-seed figure; at other `--seconds` (a
    shorter budget) the base row against the run's model is what the extra seconds bought.
    Each variant's Dice is averaged over its seeds per test case first; the interval resamples
    whole `groups` (patients) where given."""
    own = {int(r["seed"]): r["per_case_dice"] for r in own_model_rows(peers_doc) if r.get("per_case_dice")}
    if not own:
        raise SystemExit("--pair-with: the peers record has no row of the run's own model (nas_pick with a source)")
    return {name: compare({name: seeds, "run_model": own}, against="run_model", groups=groups)[f"{name}-run_model"]
            for name, seeds in per_case_by(rows).items()}
