"""`medseg-nas run CONFIG [--run-dir DIR] [--set k=v ...]`: the whole job, resumable.

    pre-flight (medseg_nas.preflight: every setting, device and package the stages below need)
    prepare  (only when data.root is missing and data.prepare.source is set: data.ensure_dataset)
    search   (runner.run_search; resumes a stopped search, skipped once the trial budget is spent)
    retrain  (skipped when best/ holds a loadable model retrained for the same pick and trial)
    evaluate (skipped when metrics.csv / summary.json are newer than best/model.pt)
    export   (skipped when every configured format is newer than best/model.pt)
    report   (rewritten whenever an earlier stage did something or report.html is missing)

Whether a stage's output is current is the run directory's answer (medseg_nas.rundir.RunDir).

Running the same command again after an interruption continues where it stopped; a finished
run only rewrites nothing. From the search on, the run directory is locked (run_lock): a second
`run`, `search` or `retrain` on it is refused while this one lives. Ends with a short summary:
front size, chosen network, test Dice per class, report path.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

from medseg_nas.config import Config, add_overrides_argument, load_config
from medseg_nas.jsonio import atomic_write
from medseg_nas.nas.run_lock import run_dir_lock
from medseg_nas.preflight import preflight
from medseg_nas.rundir import RunDir


def _say(msg: str) -> None:
    print(f"\n=== {msg}", flush=True)


def stage_prepare(cfg: Config) -> bool:
    from medseg_nas.data.dataset_root import ensure_dataset

    return ensure_dataset(cfg.data, log=_say)


def stage_search(cfg: Config, run: RunDir) -> bool:
    if run.search_complete(cfg):
        print(f"search: complete ({run.trials_db}), skipped")
        return False
    from medseg_nas.nas.runner import run_search

    resume = run.config_yaml.is_file() and run.trials_db.is_file()
    _say(f"search{' (resumed)' if resume else ''} → {run.path}")
    summary = run_search(cfg, run.path, resume=resume)
    if summary.stop_reason == "interrupted":
        raise KeyboardInterrupt
    print(f"search: {summary.n_trials} trials, front of {len(summary.front)}, hypervolume {summary.hypervolume:.4f} "
          f"({summary.stop_reason})")
    return summary.n_new > 0


def stage_retrain(cfg: Config, run: RunDir, force: bool) -> bool:
    from medseg_nas.stages.retrain import pick_trial, retrain

    if not force and run.retrain_current(cfg, pick_trial):
        print(f"retrain: {run.model_pt} is current, skipped")
        return False
    _say("retrain")
    retrain(run.path, cfg.retrain.pick, force=True, cfg=cfg)
    return True


def stage_evaluate(cfg: Config, run: RunDir, force: bool) -> bool:
    from medseg_nas.stages.evaluate import evaluate_run

    if not force and run.evaluation_current(cfg.predict.tta, cfg.predict.postprocess):
        print(f"evaluate: {run.summary_json} is current, skipped")
        return False
    _say("evaluate (test split)")
    evaluate_run(run.path, tta=cfg.predict.tta, cfg=cfg)
    return True


def stage_export(cfg: Config, run: RunDir, force: bool) -> bool:
    from medseg_nas.stages.export import export_all, first_test_image

    formats = list(cfg.export.formats)
    if not formats:
        return False
    if not force and run.exports_current(formats):
        print(f"export: {', '.join(formats)} current, skipped")
        return False
    _say(f"export ({', '.join(formats)})")
    export_all(run.model_pt, run.best, formats, first_test_image(run))
    return True


def stage_report(run: RunDir, changed: bool) -> Path:
    from medseg_nas.stages.report import build_report

    if run.report_html.is_file() and not changed:
        print(f"report: {run.report_html} is current, skipped")
        return run.report_html
    _say("report")
    return build_report(run.path)


def final_summary(run: RunDir, report: Path) -> str:
    front = json.loads(run.front_json.read_text()) if run.front_json.is_file() else {}
    info = json.loads(run.retrain_json.read_text())
    summary = json.loads(run.summary_json.read_text())
    from medseg_nas.space import Genome
    from medseg_nas.stages.report import cost_line

    g = Genome.from_dict(info["genome"])
    n_params = info.get("n_params") or int(round(math.exp(info["search_objectives"]["f2"])))
    lines = [
        "",
        f"run {run.path}: {front.get('n_trials', '?')} trials, Pareto front of {len(front.get('front', []))} networks, "
        f"hypervolume {front.get('hypervolume', float('nan')):.4f}",
        f"chosen ({info['pick']}): trial {info['trial_id']}  {g.describe()}  {n_params:,} parameters",
        cost_line(summary.get("costs") or {}, n_params),
        "test Dice per class: " + ", ".join(f"{name} {c['dice']['mean']:.3f}" for name, c in summary["classes"].items())
        + f"  (mean {summary['mean_dice']:.3f}, {summary['n_cases']} cases)",
        "test HD95 per class (mm): " + ", ".join(f"{name} {c['hd95']['mean']:.2f}" for name, c in summary["classes"].items())
        + f"  (mean {summary['mean']['hd95']:.2f})",
        f"model: {run.model_pt}   report: {report}",
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
    run: RunDir | None = None
    earlier: list[dict] = []

    def timed(name, fn, *args):
        t = time.time()
        try:
            return fn(*args)
        finally:
            seconds[name] = time.time() - t
            if run is not None:  # as each stage ends: a killed process (SIGKILL, a lost machine) runs no `finally`
                record_stage_times(run, earlier, seconds, time.time() - t0, completed=False)

    timed("prepare", stage_prepare, cfg)
    order = ["retrain", "evaluate", "export"]
    force = {s: False for s in order}
    if force_from:
        for s in order[order.index(force_from):]:
            force[s] = True
    run_dir.mkdir(parents=True, exist_ok=True)
    run = RunDir(run_dir)
    earlier = read_stage_times(run)
    completed = False
    # one process per run directory; the search and retrain stages take this lock again (re-entrant)
    try:
        with run_dir_lock(run_dir):
            changed = timed("search", stage_search, cfg, run)
            # evaluate and export depend on the model only: a new search/retrain redoes them, a changed
            # evaluation setting (TTA) redoes evaluate alone; the report follows any change
            retrained = timed("retrain", stage_retrain, cfg, run, force["retrain"] or changed)
            evaluated = timed("evaluate", stage_evaluate, cfg, run, force["evaluate"] or retrained)
            exported = timed("export", stage_export, cfg, run, force["export"] or retrained)
            report = timed("report", stage_report, run, changed or retrained or evaluated or exported)
        completed = True
    finally:  # a stopped or failed run still leaves what its stages took, for the one that resumes it
        if run.path.is_dir():
            record_stage_times(run, earlier, seconds, time.time() - t0, completed)
    print(final_summary(run, report))
    # per-stage wall-clock: the quickstart promise (< 15 min on 2 CPU cores) is checked on these
    print("wall-clock: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
          + f"; total {time.time() - t0:.0f} s")
    return run_dir


def library_versions() -> dict[str, str | None]:
    """What a run's numbers depend on besides the code: two ACDC runs of one config and seed
    differed in f1 by up to 0.02 while each repeats bit-identically, and nothing said which
    libraries each had run with."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("torch", "monai", "numpy", "scikit-learn", "pymoo", "nibabel"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def read_stage_times(run: RunDir) -> list[dict]:
    """The entries earlier invocations of `run` left in this run directory."""
    return json.loads(run.stage_times_json.read_text()).get("runs", []) if run.stage_times_json.is_file() else []


def record_stage_times(run: RunDir, earlier: list[dict], seconds: dict[str, float], total: float,
                       completed: bool) -> None:
    """Write this invocation's stage wall-clock after `earlier`'s, so benchmarks read it instead of a log.

    Rewritten as each stage ends, so an invocation killed mid-stage keeps one entry with its finished
    stages (the stage it was killed in is lost). A resumed run adds another entry; its already finished
    stages show as skipped (a few seconds), so a stage's cost over the run's life is its sum over the entries."""
    this = {"finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "completed": completed, "cpu_count": os.cpu_count(),
            "versions": library_versions(),
            "seconds": {k: round(v, 1) for k, v in seconds.items()}, "total_s": round(total, 1)}
    atomic_write(run.stage_times_json, json.dumps({"runs": [*earlier, this]}, indent=2))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config of the run")
    p.add_argument("--run-dir", default=None, help="run directory (default: <run_root>/<name> of the config)")
    add_overrides_argument(p, "search.budget_trials=8")
    p.add_argument("--redo", choices=["retrain", "evaluate", "export"], default=None,
                   help="redo this stage and the ones after it even if their outputs are complete")


def main(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    run_pipeline(cfg, args.run_dir, args.redo, source=args.config)
    return 0
