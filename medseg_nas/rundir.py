"""The run directory: where every stage's files live, and whether a stage's output is current.

    config.yaml  split.json  fingerprint.json  plan.json    search: config, data chain (data.load_data)
    trials.sqlite  strategy_state.json  search.log          search: trials + ask log, strategy state, log
    front.json  front.png  hypervolume.png  tensorboard/    search: front artefacts, curves
    best/model.pt  genome.json  history.json  retrain.json  retrain
    best/metrics.csv  summary.json  predictions/            evaluate
    best/model.ts  model.onnx  bundle/  export.json         export
    report.html                                             report

Each stage needs only the run directory; the pipeline asks this object, not the other stages'
files, whether a stage can be skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from medseg_nas.config import Config, config_to_dict, load_config, read_yaml_file
from medseg_nas.errors import DataError, MedsegError
from medseg_nas.results import FINISHED, TrialStatus
from medseg_nas.space.network import LEGACY_CELL

if TYPE_CHECKING:  # the data package imports torch and MONAI: only the methods that read data load it
    from medseg_nas.data import DataFiles, Split

RETRAIN_KEYS = ("trial_id", "pick", "epochs_budget", "iters_per_epoch", "include_val")  # model.pt extra == retrain.json


class RunDir:
    """The paths of one run directory and what its files say about the stages' outputs."""

    def __init__(self, path: str | Path) -> None:
        self.path = p = Path(path)
        self.config_yaml = p / "config.yaml"
        self.split_json = p / "split.json"
        self.fingerprint_json = p / "fingerprint.json"
        self.plan_json = p / "plan.json"
        self.trials_db = p / "trials.sqlite"
        self.strategy_state = p / "strategy_state.json"
        self.search_log = p / "search.log"
        self.front_json = p / "front.json"
        self.stage_times_json = p / "stage_times.json"  # `medseg-nas run`'s wall-clock per stage, every run appended
        self.front_png = p / "front.png"
        self.hypervolume_png = p / "hypervolume.png"
        self.tensorboard = p / "tensorboard"
        self.trial_states = p / "trial_states"  # successive halving: the state a promotion goes on from
        self.report_html = p / "report.html"
        self.best = b = p / "best"
        self.model_pt = b / "model.pt"
        self.genome_json = b / "genome.json"
        self.history_json = b / "history.json"
        self.retrain_json = b / "retrain.json"
        self.metrics_csv = b / "metrics.csv"
        self.summary_json = b / "summary.json"
        self.predictions = b / "predictions"
        self.model_ts = b / "model.ts"
        self.model_onnx = b / "model.onnx"
        self.bundle = b / "bundle"
        self.export_json = b / "export.json"

    def trial_state(self, trial_id: int, rung: int) -> Path:
        """Trial `trial_id`'s training state at the end of rung `rung` (successive halving)."""
        return self.trial_states / f"trial_{trial_id:04d}_rung{rung}.pt"

    def trial_log(self, trial_id: int) -> Path:
        """Trial `trial_id`'s TensorBoard folder (every rung of it writes there)."""
        return self.tensorboard / f"trial_{trial_id:04d}"

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # -- what the search wrote -----------------------------------------------------------------

    def config(self, overrides: list[str] | None = None) -> Config:
        """The run's saved config; a run saved before `space.cell` existed keeps its residual cell
        (whatever today's default is), so its trials and checkpoints rebuild the network they trained."""
        if not self.config_yaml.is_file():
            raise MedsegError(f"{self.path} is not a run directory (no config.yaml); run `medseg-nas search CONFIG` first")
        cfg = load_config(self.config_yaml, overrides)
        if not any(o.startswith("space.cell=") for o in overrides or []) and not saved_cell(self.config_yaml):
            cfg.space.cell = LEGACY_CELL
        return cfg

    def data_files(self) -> "DataFiles":
        from medseg_nas.data import DataFiles

        return DataFiles(split=self.split_json, fingerprint=self.fingerprint_json, plan=self.plan_json)

    def split(self) -> "Split":
        """The saved `medseg_nas.data.Split`; MedsegError when the search has not written it."""
        from medseg_nas.data import Split

        if not self.split_json.is_file():
            raise MedsegError(f"{self.split_json} does not exist; the search stage writes it")
        return Split.load(self.split_json)

    def cases(self, part: str = "test") -> list[dict]:
        """The datalist entries of one split part ("train" | "val" | "test"), in split order."""
        from medseg_nas.data import load_datalist

        cfg = self.config()
        ids = getattr(self.split(), part)
        by_id = {d["id"]: d for d in load_datalist(cfg.data.root)}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise DataError(f"split.json of {self.path} names cases missing from {cfg.data.root}: {missing[:5]}")
        return [by_id[i] for i in ids]

    def trial_rows(self) -> list:
        """Every `TrialRow` of the store (none before the search has started)."""
        from medseg_nas.trial_store import TrialStore

        if not self.trials_db.is_file():
            return []
        with TrialStore(self.trials_db) as store:
            return store.rows()

    # -- is a stage's output current -------------------------------------------------------------

    def search_complete(self, cfg: Config) -> bool:
        """The trial budget is spent, nothing is running or pending, and front.json is written.
        A wall-clock budget (`budget_trials` < 1) is never complete here: the runner decides."""
        from medseg_nas.trial_store import TrialStore

        if not self.trials_db.is_file() or not self.front_json.is_file():
            return False
        from medseg_nas.ask_log import AskLog

        with TrialStore(self.trials_db) as store:
            finished = store.count(FINISHED)
            running = store.count(TrialStatus.RUNNING)
            pending = AskLog(store).n_pending()
        budget = cfg.search.budget_trials
        if running or pending or budget < 1:
            return False
        return finished >= budget

    def retrain_outputs_complete(self) -> bool:
        return all(p.is_file() for p in (self.model_pt, self.genome_json, self.history_json, self.retrain_json))

    def checkpoint_problem(self) -> str | None:
        """Why best/model.pt cannot stand for best/retrain.json (unreadable, or another retrain's), or None.

        The pipeline skips retraining when the outputs are complete: a truncated or foreign model
        file must not pass as current.
        """
        from medseg_nas.model_io import load_model

        try:
            info = json.loads(self.retrain_json.read_text())
        except (OSError, ValueError) as exc:
            return f"{self.retrain_json} is unreadable ({exc})"
        try:
            model = load_model(self.model_pt)
        except Exception as exc:  # noqa: BLE001 - whatever makes it unloadable, the answer is to retrain
            return str(exc) if isinstance(exc, MedsegError) else f"{self.model_pt} does not load ({type(exc).__name__}: {exc})"
        if not isinstance(info, dict) or any(model.extra.get(k) != info.get(k) for k in RETRAIN_KEYS):
            return f"{self.model_pt} was not written by the retrain that {self.retrain_json} describes"
        return None

    def retrain_current(self, cfg: Config, pick_trial: Callable, log: Callable[[str], None] = print) -> bool:
        """best/ holds a loadable model retrained for the config's pick and budget, and the pick
        still names the same trial. `pick_trial(rows, pick, retrain_cfg) -> (row, why)` is the retrain stage's
        rule (passed in: the run directory knows files, not how a trial is chosen)."""
        if not self.retrain_outputs_complete():
            return False
        problem = self.checkpoint_problem()
        if problem is not None:
            log(f"retrain: redone, the existing model is not usable: {problem}")
            return False
        info = json.loads(self.retrain_json.read_text())
        if str(info.get("pick")) != str(cfg.retrain.pick):
            return False
        row, _ = pick_trial(self.trial_rows(), str(cfg.retrain.pick), cfg.retrain)
        budget = (cfg.retrain.epochs, cfg.retrain.iters_per_epoch, cfg.retrain.include_val, cfg.retrain.monitor_fraction,
                  cfg.retrain.augment or cfg.data.augment, cfg.retrain.seconds_budget)
        return row.id == info.get("trial_id") and (info.get("epochs_budget"), info.get("iters_per_epoch"),
                                                   info.get("include_val"), info.get("monitor_fraction"),
                                                   info.get("augment", cfg.data.augment),  # older runs: data.augment
                                                   info.get("seconds_budget")) == budget  # older runs: none

    def record_retrain_config(self, cfg: Config) -> None:
        """Write `cfg`'s retrain section into the saved config.yaml, so the run directory says how
        best/ was made even when `--set retrain.*` changed it after the search (the search
        sections, which a resume checks, are left as the search wrote them)."""
        import yaml

        from medseg_nas.jsonio import atomic_write

        if not self.config_yaml.is_file():
            return
        saved = read_yaml_file(self.config_yaml) or {}
        if not isinstance(saved, dict):
            return
        retrain = config_to_dict(cfg)["retrain"]
        if saved.get("retrain") != retrain:
            saved["retrain"] = retrain
            atomic_write(self.config_yaml, yaml.safe_dump(saved, sort_keys=False))

    def model_derived(self) -> list[Path]:
        """The files made from best/model.pt by evaluate and export (stale once it is replaced)."""
        return [self.metrics_csv, self.summary_json, self.model_ts, self.model_onnx, self.export_json]

    def evaluation_current(self, tta: bool, postprocess: str | None = None) -> bool:
        """metrics.csv and summary.json are newer than best/model.pt and were made with `tta` (and,
        if given, under that `predict.postprocess` mode)."""
        if not self.newer_than_model([self.metrics_csv, self.summary_json]) or not self.model_pt.is_file():
            return False
        try:
            summary = json.loads(self.summary_json.read_text())
        except (OSError, json.JSONDecodeError):
            return False
        mode = (summary.get("postprocess") or {}).get("mode")
        return bool(summary.get("tta")) == bool(tta) and (postprocess is None or mode == postprocess)

    def exports_current(self, formats) -> bool:
        """Every file of `formats` (and export.json) exists and is newer than best/model.pt."""
        need = [self.export_json]
        if "torchscript" in formats:
            need.append(self.model_ts)
        if "onnx" in formats:
            need.append(self.model_onnx)
        if "bundle" in formats:
            need += [self.bundle / "configs" / "inference.json", self.bundle / "models" / "model.ts"]
        return self.newer_than_model(need)

    def newer_than_model(self, paths: list[Path]) -> bool:
        """All `paths` exist and none is older than best/model.pt (if there is one)."""
        if not all(p.is_file() for p in paths):
            return False
        return not self.model_pt.is_file() or all(p.stat().st_mtime >= self.model_pt.stat().st_mtime for p in paths)


def saved_cell(config_yaml: Path) -> str | None:
    """`space.cell` as written in a saved config.yaml (None: saved before the key existed)."""
    saved = read_yaml_file(config_yaml)
    space = (saved.get("space") if isinstance(saved, dict) else None) or {}
    return space.get("cell") if isinstance(space, dict) else None
