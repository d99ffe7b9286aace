"""`medseg-nas search CONFIG`: the architecture search into a run directory (the loop itself is
medseg_nas.nas.runner; this is its command line)."""

from __future__ import annotations

import argparse

from medseg_nas.config import add_overrides_argument, load_config
from medseg_nas.nas.runner import run_search
from medseg_nas.rundir import RunDir
from medseg_nas.search import STRATEGIES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML config of the run")
    parser.add_argument("--run-dir", default=None, help="run directory (default: <run_root>/<name> of the config)")
    parser.add_argument("--strategy", choices=STRATEGIES, default=None, help="override search.strategy")
    parser.add_argument("--budget", type=int, default=None, metavar="N", help="override search.budget_trials")
    parser.add_argument("--resume", action="store_true", help="continue the search saved in the run directory")
    add_overrides_argument(parser, "train.epochs=5")


def main(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    from medseg_nas.preflight import preflight

    cfg.search.strategy = args.strategy or cfg.search.strategy
    cfg.search.budget_trials = cfg.search.budget_trials if args.budget is None else args.budget
    preflight(cfg, ["search"], args.config)
    summary = run_search(cfg, args.run_dir, resume=args.resume)  # --strategy / --budget are in cfg now
    print(
        f"{summary.n_trials} trials, front of {len(summary.front)} networks, hypervolume {summary.hypervolume:.4f};"
        f" see {RunDir(summary.run_dir).front_json}"
    )
    if summary.stop_reason == "interrupted":
        return 130
    return 0
