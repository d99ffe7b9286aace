"""`medseg-nas run CONFIG [--run-dir DIR] [--set k=v ...]`: the whole job, resumable.

    pre-flight (medseg_nas.preflight: every setting, device and package the stages below need)
    prepare  (only when data.root is missing and data.prepare.source is set)
    search   (runner.run_search; resumes a stopped search, skipped once the trial budget is spent)
    retrain  (skipped when best/ holds a loadable model retrained for the same pick and trial)
    evaluate (skipped when metrics.csv / summary.json are newer than best/model.pt)
    export   (skipped when every configured format is newer than best/model.pt)
    report   (rewritten whenever an earlier stage did something or report.html is missing)

Running the same command again after an interruption continues where it stopped; a finished
run only rewrites nothing. From the search on, the run directory is locked (run_lock): a second
`run`, `search` or `retrain` on it is refused while this one lives. Ends with a short summary:
front size, chosen network, test Dice per class, report path.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from medseg_nas.config import Config, load_config
from medseg_nas.errors import MedsegError
from medseg_nas.preflight import preflight
from medseg_nas.nas.run_lock import run_dir_lock


def _say(msg: str) -> None:
    print(f"\n=== {msg}", flush=True)


def stage_prepare(cfg: Config) -> bool:
    root = Path(cfg.data.root) if cfg.data.root else None
    if root is None:
        raise MedsegError("data.root is empty in the config: set it to an MSD-layout folder")
    if root.exists():
        from data_prep.common import read_stamp

        if cfg.data.prepare.source and read_stamp(root) is not None:
            # ours: reused when prepared with the same settings, else one clear DataError (a
            # changed `cases`/`seed` must not silently search the old dataset)
            from data_prep import prepare_from_config

            prepare_from_config(cfg.data.prepare, root)
        return False
    if not cfg.data.prepare.source:
        raise MedsegError(f"data.root {root} does not exist and data.prepare.source is empty: "
                          "prepare the dataset first (`medseg-nas prepare ...`)")
    from data_prep import prepare_from_config

    _say(f"prepare: {cfg.data.prepare.source} → {root}")
    prepare_from_config(cfg.data.prepare, root)
    return True


def search_complete(cfg: Config, run_dir: Path) -> bool:
    from medseg_nas.nas.store import TrialStore

    store = run_dir / "trials.sqlite"
    if not store.is_file() or not (run_dir / "front.json").is_file():
        return False
    with TrialStore(store) as st:
        finished = st.count(("done", "failed"))
        running = st.count("running")
    budget = cfg.search.budget_trials
    if running or budget < 1:  # interrupted, or a wall-clock budget: let the runner decide
        return False
    state = run_dir / "strategy_state.json"
    if state.is_file():
        try:
            if json.loads(state.read_text()).get("pending"):
                return False
        except (OSError, json.JSONDecodeError):
            return False
    return finished >= budget


def stage_search(cfg: Config, run_dir: Path) -> bool:
    if search_complete(cfg, run_dir):
        print(f"search: complete ({run_dir / 'trials.sqlite'}), skipped")
        return False
    from medseg_nas.nas.runner import run_search

    resume = (run_dir / "config.yaml").is_file() and (run_dir / "trials.sqlite").is_file()
    _say(f"search{' (resumed)' if resume else ''} → {run_dir}")
    summary = run_search(cfg, run_dir, resume=resume)
    if summary.stop_reason == "interrupted":
        raise KeyboardInterrupt
    print(f"search: {summary.n_trials} trials, front of {len(summary.front)}, hypervolume {summary.hypervolume:.4f} "
          f"({summary.stop_reason})")
    return summary.n_new > 0


def retrain_current(cfg: Config, run_dir: Path) -> bool:
    from medseg_nas.stages.retrain import checkpoint_problem, outputs_complete, pick_trial
    from medseg_nas.nas.store import TrialStore

    if not outputs_complete(run_dir):
        return False
    problem = checkpoint_problem(run_dir)
    if problem is not None:
        print(f"retrain: redone, the existing model is not usable: {problem}")
        return False
    info = json.loads((run_dir / "best" / "retrain.json").read_text())
    if str(info.get("pick")) != str(cfg.retrain.pick):
        return False
    with TrialStore(run_dir / "trials.sqlite") as st:
        row, _ = pick_trial(st.rows(), str(cfg.retrain.pick))
    budget = (cfg.retrain.epochs, cfg.retrain.iters_per_epoch, cfg.retrain.include_val, cfg.retrain.monitor_fraction)
    return row.id == info.get("trial_id") and (info.get("epochs_budget"), info.get("iters_per_epoch"),
                                               info.get("include_val"), info.get("monitor_fraction")) == budget


def stage_retrain(cfg: Config, run_dir: Path, force: bool) -> bool:
    from medseg_nas.stages.retrain import retrain

    if not force and retrain_current(cfg, run_dir):
        print(f"retrain: {run_dir / 'best' / 'model.pt'} is current, skipped")
        return False
    _say("retrain")
    retrain(run_dir, cfg.retrain.pick, force=True, cfg=cfg)
    return True


def _summary_tta(run_dir: Path) -> bool | None:
    try:
        return bool(json.loads((run_dir / "best" / "summary.json").read_text()).get("tta"))
    except (OSError, json.JSONDecodeError):
        return None


def stage_evaluate(cfg: Config, run_dir: Path, force: bool) -> bool:
    from medseg_nas.stages.evaluate import evaluate_run, outputs_complete

    if not force and outputs_complete(run_dir) and _summary_tta(run_dir) == bool(cfg.predict.tta):
        print(f"evaluate: {run_dir / 'best' / 'summary.json'} is current, skipped")
        return False
    _say("evaluate (test split)")
    evaluate_run(run_dir, tta=cfg.predict.tta)
    return True


def stage_export(cfg: Config, run_dir: Path, force: bool) -> bool:
    from medseg_nas.stages.export import export_all, first_test_image, outputs_complete

    formats = list(cfg.export.formats)
    if not formats:
        return False
    if not force and outputs_complete(run_dir / "best", formats):
        print(f"export: {', '.join(formats)} current, skipped")
        return False
    _say(f"export ({', '.join(formats)})")
    export_all(run_dir / "best" / "model.pt", run_dir / "best", formats, first_test_image(run_dir))
    return True


def stage_report(run_dir: Path, changed: bool) -> Path:
    from medseg_nas.stages.report import build_report

    out = run_dir / "report.html"
    if out.is_file() and not changed:
        print(f"report: {out} is current, skipped")
        return out
    _say("report")
    return build_report(run_dir)


def final_summary(run_dir: Path, report: Path) -> str:
    front = json.loads((run_dir / "front.json").read_text()) if (run_dir / "front.json").is_file() else {}
    info = json.loads((run_dir / "best" / "retrain.json").read_text())
    summary = json.loads((run_dir / "best" / "summary.json").read_text())
    from medseg_nas.space import Genome

    g = Genome.from_dict(info["genome"])
    n_params = info.get("n_params") or int(round(math.exp(info["search_objectives"]["f2"])))
    lines = [
        "",
        f"run {run_dir}: {front.get('n_trials', '?')} trials, Pareto front of {len(front.get('front', []))} networks, "
        f"hypervolume {front.get('hypervolume', float('nan')):.4f}",
        f"chosen ({info['pick']}): trial {info['trial_id']}  {g.describe()}  {n_params:,} parameters",
        "test Dice per class: " + ", ".join(f"{name} {c['dice']['mean']:.3f}" for name, c in summary["classes"].items())
        + f"  (mean {summary['mean_dice']:.3f}, {summary['n_cases']} cases)",
        f"model: {run_dir / 'best' / 'model.pt'}   report: {report}",
    ]
    return "\n".join(lines)


def run_pipeline(cfg: Config, run_dir: str | Path | None = None, force_from: str | None = None,
                 source: str = "") -> Path:
    # everything the later stages need is checked before the first one spends any time
    for warning in preflight(cfg, source=source):
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    run_dir = Path(run_dir) if run_dir else Path(cfg.run_root) / cfg.name
    t0 = time.time()
    seconds: dict[str, float] = {}

    def timed(name, fn, *args):
        t = time.time()
        try:
            return fn(*args)
        finally:
            seconds[name] = time.time() - t

    timed("prepare", stage_prepare, cfg)
    order = ["retrain", "evaluate", "export"]
    force = {s: False for s in order}
    if force_from:
        for s in order[order.index(force_from):]:
            force[s] = True
    run_dir.mkdir(parents=True, exist_ok=True)
    # one process per run directory; the search and retrain stages take this lock again (re-entrant)
    with run_dir_lock(run_dir):
        changed = timed("search", stage_search, cfg, run_dir)
        # evaluate and export depend on the model only: a new search/retrain redoes them, a changed
        # evaluation setting (TTA) redoes evaluate alone; the report follows any change
        retrained = timed("retrain", stage_retrain, cfg, run_dir, force["retrain"] or changed)
        evaluated = timed("evaluate", stage_evaluate, cfg, run_dir, force["evaluate"] or retrained)
        exported = timed("export", stage_export, cfg, run_dir, force["export"] or retrained)
        report = timed("report", stage_report, run_dir, changed or retrained or evaluated or exported)
    print(final_summary(run_dir, report))
    # per-stage wall-clock: the quickstart promise (< 15 min on 2 CPU cores) is checked on these
    print("wall-clock: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
          + f"; total {time.time() - t0:.0f} s")
    return run_dir


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config of the run")
    p.add_argument("--run-dir", default=None, help="run directory (default: <run_root>/<name> of the config)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config entry, e.g. --set search.budget_trials=8 (repeatable)")
    p.add_argument("--redo", choices=["retrain", "evaluate", "export"], default=None,
                   help="redo this stage and the ones after it even if their outputs are complete")


def main(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    run_pipeline(cfg, args.run_dir, args.redo, source=args.config)
    return 0
