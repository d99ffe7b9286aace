"""A whole-job run directory rebuilt from a controls record (scripts/whole_job_peers.py --rebuild).

Issue 27's controls need 3 training seeds per arm, ~25 CPU-minutes each, so they span sessions;
a run directory does not travel with the repository, the record does. Retraining a seed needs only
the run's config, its split and data plan, and best/retrain.json (genome, seconds, seed): the
split is a deterministic function of the dataset and `data.split_seed`, so it is rebuilt, then
checked against the record: the same test cases and the same numbers of trained and monitor cases,
or the rebuild stops. The run's own model (seed 0) is not rebuilt; the record already holds its row.

The source can also be the run's whole-job summary (scripts/whole_job_summary.py, `"benchmark":
"whole_job"`), for a run whose peers were never measured before its directory was lost (ACDC): it
names the test cases, the numbers of training and validation cases, the chosen genome and the
retrain's seconds; the run's own model is then not in any peers record, only in the summary.
"""

from __future__ import annotations

import json
from pathlib import Path

from medseg_nas.config import load_config, save_config
from medseg_nas.errors import MedsegError
from medseg_nas.jsonio import atomic_write
from medseg_nas.rundir import RunDir


def is_own_model(row: dict) -> bool:
    """A `nas_pick` row of the run's own model has a `source` (the model file the run trained); the
    pick retrained beside its peers has none."""
    return bool(row.get("source"))


def retrained_entry(entry: dict) -> dict:
    """A peers record's result without its rows of a run's own model: what was trained beside the peers."""
    return {**entry, "runs": [r for r in entry.get("runs", []) if not is_own_model(r)]}


def own_model_rows(doc: dict) -> list[dict]:
    """A peers record's rows of the run's own model, as against the pick retrained beside its peers."""
    return [r for r in doc.get("results", {}).get("nas_pick", {}).get("runs", []) if is_own_model(r)]


def own_model_entry(doc: dict) -> dict:
    """The record's row for the run's own retrained model (the one with a `source`)."""
    rows = own_model_rows(doc)
    if not rows or not rows[0].get("per_case_dice"):
        raise MedsegError("the record has no nas_pick row of the run's own model with per-case Dice; "
                          "nothing to check a rebuilt split against")
    return rows[0]


def record_run(doc: dict) -> tuple[dict, dict]:
    """(retrain.json's content, the split facts a rebuild must reproduce) of a peers record or of a
    whole-job summary. Split facts: test case ids and either the trained/monitor counts (peers) or
    the train/validation counts (summary)."""
    if doc.get("benchmark") == "whole_job":
        chosen = doc["chosen"]
        info = {"seconds": doc["retrain"]["seconds"], "seed": int(doc["retrain"].get("seed", 0)),
                "genome": chosen["genome"], "trial_id": chosen.get("trial_id")}
        return info, {"test": sorted(doc["data"]["test_ids"]), "n_train": doc["data"]["n_train"],
                      "n_val": doc["data"]["n_val"]}
    pick, own = doc["results"]["nas_pick"], own_model_entry(doc)
    info = {"seconds": doc["run_model_seconds"], "seed": int(own["seed"]), "genome": pick["genome"],
            "trial_id": pick.get("trial_id")}
    return info, {"test": sorted(own["per_case_dice"]), "n_trained_cases": doc.get("n_trained_cases"),
                  "n_monitor": doc.get("n_monitor")}


def rebuild_run_dir(record: str | Path, config: str | Path, run_dir: str | Path) -> RunDir:
    """Write config.yaml, split/fingerprint/plan and best/retrain.json into `run_dir` from `record`
    (a whole_job_peers record or a whole-job summary) and `config` (the config the run was made with)."""
    from medseg_nas.data.loaded import load_data
    from medseg_nas.stages.retrain import monitor_split

    record, run = Path(record), RunDir(run_dir)
    if run.config_yaml.is_file():
        raise MedsegError(f"{run.path} already holds a run (config.yaml); rebuild only into a new directory")
    info, want = record_run(json.loads(record.read_text()))
    cfg = load_config(config)
    files, created = run.data_files(), not run.path.exists()
    written = (run.config_yaml, files.split, files.fingerprint, files.plan)

    def undo() -> None:
        """A failed rebuild leaves nothing behind that a retry would refuse as 'already holds a run'."""
        for p in written:
            p.unlink(missing_ok=True)
        for d in (run.path / "best", run.path) if created else (run.path / "best",):
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()

    (run.path / "best").mkdir(parents=True, exist_ok=True)
    try:
        save_config(cfg, run.config_yaml)
        split = load_data(cfg.data.root, cfg.data, files=files, build=False).split
    except Exception:
        undo()
        raise
    train, monitor, _ = monitor_split(split.train, split.val, cfg.retrain.include_val, cfg.retrain.monitor_fraction)
    facts = {"test": sorted(split.test), "n_trained_cases": len(train), "n_monitor": len(monitor),
             "n_train": len(split.train), "n_val": len(split.val)}
    got = {k: facts[k] for k in want}
    if got != want:
        bad = [k for k in got if got[k] != want[k]]
        undo()
        raise MedsegError(f"{config} with the data in {cfg.data.root} does not rebuild the split of {record} "
                          f"({', '.join(bad)} differ); use the config and dataset the run was made with")
    atomic_write(run.retrain_json, json.dumps({**info, "rebuilt_from": str(record)}, indent=2))
    return run
