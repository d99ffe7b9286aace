"""Damaged or busy run directories."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from medseg_nas.testing.reliability.builders import (  # noqa: F401 — not every module uses every helper
    DOLLAR_EXPRESSION, held_lock, truncated_store_run, msd_download, prepare_cmd, run_cmd, searched_run_dir, synthetic_dataset,
    tiny_checkpoint, write_config, write_nifti)
from medseg_nas.testing.reliability.harness import case


# run directories and model files

@case("run dir", "`search --resume` with nothing to resume")
def resume_nothing(d: Path) -> list[str]:
    return ["search", str(write_config(d, {})), "--resume", "--run-dir", str(d / "run")]


@case("run dir", "`retrain` of a folder that is not a run directory")
def retrain_not_run_dir(d: Path) -> list[str]:
    return ["retrain", str(d)]


@case("run dir", "`retrain` before any search")
def retrain_no_search(d: Path) -> list[str]:
    write_config(d, {})
    return ["retrain", str(d)]


@case("run dir", "`retrain --device cuda`", no_cuda=True)
def retrain_device_no_cuda(d: Path) -> list[str]:
    write_config(d, {})
    return ["retrain", str(d), "--device", "cuda"]


@case("run dir", "`export` before retrain")
def export_no_model(d: Path) -> list[str]:
    return ["export", str(d)]


@case("run dir", "`export --format onnx`", missing=("onnx", "onnxruntime"))
def export_onnx_missing(d: Path) -> list[str]:
    return ["export", str(d), "--format", "onnx"]


@case("run dir", "`search --resume` of an NSGA-II run whose strategy_state.json holds a pickle (code)")
def resume_pickled_state(d: Path) -> list[str]:
    import base64
    import json
    import pickle

    import numpy as np

    config, run = searched_run_dir(d, {"search": {"strategy": "nsga2"}})
    # the layout the pickling version wrote: pymoo's algorithm as a base64 pickle (here a harmless one)
    blob = base64.b64encode(pickle.dumps(Path("pwned"))).decode("ascii")
    own = {"pymoo": blob, "batch_json": [], "batch_F": [], "handed": 0, "generations": 0}
    state = {"name": "nsga2", "seed": 0, "rng": np.random.default_rng(0).bit_generator.state, "history": [],
             "pending": [], "own": own}
    (run / "strategy_state.json").write_text(json.dumps({"strategy": "nsga2", "state": state, "pending": []}))
    return ["search", str(config), "--resume", "--run-dir", str(run)]


@contextlib.contextmanager
def busy_run_dir(d: Path) -> Iterator[tuple[Path, Path]]:
    """(config file, d/run) while another process runs `medseg-nas search` in d/run (holds its lock)."""
    config, run = searched_run_dir(d, {})
    with held_lock(run, ["search", str(config), "--run-dir", str(run)]):
        yield config, run


@case("run dir", "`search` on a run directory another search is running in")
def search_busy(d: Path) -> Iterator[list[str]]:
    with busy_run_dir(d) as (config, run):
        yield ["search", str(config), "--run-dir", str(run)]


@case("run dir", "`search --resume` beside the live search")
def resume_busy(d: Path) -> Iterator[list[str]]:
    with busy_run_dir(d) as (config, run):
        yield ["search", str(config), "--resume", "--run-dir", str(run)]


@case("run dir", "`retrain` of a run directory a search is running in")
def retrain_busy(d: Path) -> Iterator[list[str]]:
    with busy_run_dir(d) as (_, run):
        yield ["retrain", str(run)]


@case("run dir", "`run` on a run directory a search is running in")
def run_busy(d: Path) -> Iterator[list[str]]:
    with busy_run_dir(d) as (config, run):
        yield ["run", str(config), "--run-dir", str(run)]


@case("run dir", "`export` of a run whose best/model.pt is empty (0 bytes)")
def export_empty_model(d: Path) -> list[str]:
    (d / "best").mkdir()
    (d / "best" / "model.pt").write_bytes(b"")
    return ["export", str(d)]


@case("run dir", "`evaluate` of a run whose best/model.pt is empty (0 bytes)")
def evaluate_empty_model(d: Path) -> list[str]:
    _, run = searched_run_dir(d, {})
    (run / "best").mkdir()
    (run / "best" / "model.pt").write_bytes(b"")
    return ["evaluate", str(run)]


@case("run dir", "`export` of a checkpoint whose data_plan.axcodes is a `$` expression (code)")
def export_hostile_checkpoint(d: Path) -> list[str]:
    tiny_checkpoint(d / "best" / "model.pt", normalization=None, axcodes=DOLLAR_EXPRESSION)
    image = write_nifti(d / "img.nii.gz", (16, 16, 16))
    return ["export", str(d), "--case", str(image), "--format", "bundle"]


@case("run dir", "`search --resume` with a truncated trials.sqlite")
def resume_truncated_store(d: Path) -> list[str]:
    config, run = truncated_store_run(d)
    return ["search", str(config), "--resume", "--run-dir", str(run)]


@case("run dir", "`report` of a run whose trials.sqlite is truncated")
def report_truncated_store(d: Path) -> list[str]:
    _, run = truncated_store_run(d)
    return ["report", str(run)]


@case("run dir", "`search --resume` with a run directory config.yaml that is not YAML")
def resume_corrupt_config(d: Path) -> list[str]:
    config, run = searched_run_dir(d, {})
    (run / "config.yaml").write_text("train: {epochs: 3\n")
    return ["search", str(config), "--resume", "--run-dir", str(run)]


@case("run dir", "`search --resume` with a split.json of empty lists")
def resume_empty_split(d: Path) -> list[str]:
    config, run = searched_run_dir(d, {})
    (run / "split.json").write_text('{"train": [], "val": [], "test": []}')
    return ["search", str(config), "--resume", "--run-dir", str(run)]


@case("run dir", "`search --resume` after the dataset was re-prepared with other cases")
def resume_reprepared_dataset(d: Path) -> list[str]:
    import shutil

    from data_prep import synthetic

    config, run = searched_run_dir(d, {})
    shutil.rmtree(d / "dataset")
    synthetic.generate(d / "dataset", cases=5, seed=1)  # same names, other phantoms
    return ["search", str(config), "--resume", "--run-dir", str(run)]
