"""Does the chosen network beat the smallest genome of the space? Same retrain budget, same test set.

    python scripts/compare_smallest.py runs/quickstart [--out runs/quickstart_smallest]

The issue's bar for the embedded default: the network `medseg-nas run` picks must beat
`Genome.smallest(space)` (the trivial end of every front) on test Dice. A search-time f1 is not
that comparison (shorter budget, validation cases), so this retrains the smallest genome exactly
as `retrain` trained the chosen one (the run's config: retrain budget, seed, train+val cases)
in a copy of the run directory, evaluates it on the same test split, and prints both per-class
Dice tables and the difference. SaMEA and DMLS always train the smallest genome during the
search, so it is picked by its trial id; writes OUT/comparison.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path


from medseg_nas.errors import MedsegError
from medseg_nas.results import TrialStatus
from medseg_nas.rundir import RunDir


def smallest_trial_id(run_dir: Path) -> int:
    from medseg_nas.trial_store import TrialStore
    from medseg_nas.space import Genome
    from medseg_nas.space.genome import SearchSpace

    run = RunDir(run_dir)
    key = Genome.smallest(SearchSpace.from_config(run.config().space)).key()
    with TrialStore(run.trials_db) as st:
        ids = [r.id for r in st.rows(TrialStatus.DONE) if r.key == key]
    if not ids:
        raise MedsegError(f"the smallest genome of the space was not trained in {run_dir}'s search")
    return ids[0]


def main() -> int:
    from medseg_nas.stages.evaluate import evaluate_run
    from medseg_nas.stages.retrain import retrain

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--out", default=None, help="copy of the run directory to retrain into (default: RUN_DIR_smallest)")
    args = ap.parse_args()
    run = RunDir(args.run_dir)
    chosen = json.loads(run.summary_json.read_text())
    info = json.loads(run.retrain_json.read_text())
    out = Path(args.out) if args.out else run.path.with_name(run.path.name + "_smallest")
    out.mkdir(parents=True, exist_ok=True)
    for src in (run.config_yaml, run.split_json, run.plan_json, run.fingerprint_json, run.trials_db, run.front_json):
        if src.is_file():  # the search's outputs: the copy retrains from the same trials, split and plan
            shutil.copy2(src, out / src.name)
    tid = smallest_trial_id(out)
    if tid == info["trial_id"]:
        raise MedsegError(f"the run picked the smallest genome itself (trial {tid}): it does not beat it")
    small_info = retrain(out, str(tid), force=True, progress=False)
    small = evaluate_run(out, log=lambda s: None)
    classes = list(chosen["classes"])
    rows = {c: {"chosen": chosen["classes"][c]["dice"]["mean"], "smallest": small["classes"][c]["dice"]["mean"]}
            for c in classes}
    doc = {
        "chosen": {"trial_id": info["trial_id"], "pick": info["pick"], "n_params": info.get("n_params"),
                   "mean_dice": chosen["mean_dice"]},
        "smallest": {"trial_id": tid, "n_params": small_info.get("n_params"), "mean_dice": small["mean_dice"]},
        "dice_per_class": rows,
        "mean_dice_gain": chosen["mean_dice"] - small["mean_dice"],
        "n_test_cases": chosen["n_cases"],
    }
    (out / "comparison.json").write_text(json.dumps(doc, indent=2))
    print(f"{'test Dice':<16} {'chosen':>8} {'smallest':>9} {'gain':>7}")
    for c, r in rows.items():
        print(f"{c:<16} {r['chosen']:>8.3f} {r['smallest']:>9.3f} {r['chosen'] - r['smallest']:>+7.3f}")
    print(f"{'mean':<16} {chosen['mean_dice']:>8.3f} {small['mean_dice']:>9.3f} {doc['mean_dice_gain']:>+7.3f}")
    print(f"chosen trial {info['trial_id']} ({info.get('n_params'):,} params) vs smallest trial {tid} "
          f"({small_info.get('n_params'):,} params), {chosen['n_cases']} test cases → {out / 'comparison.json'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except MedsegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
