"""What the reliability cases build: config files, tiny checkpoints, NIfTI files, phantom
datasets and downloads, a run directory as a search leaves it, a lock held by another process."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path
from typing import Callable

from medseg_nas.testing.reliability.harness import _env

# a config that passes every check and trains nothing by itself: cases change one thing in it
QUIET_EXPORT = {"export": {"formats": ["torchscript"]}}


# --- helpers for the cases ---------------------------------------------------------------------


def write_config(folder: Path, data: dict | str | bytes, name: str = "config.yaml") -> Path:
    """A config file: a dict (merged over QUIET_EXPORT, dumped as YAML) or raw text/bytes."""
    import yaml

    path = folder / name
    if isinstance(data, dict):
        merged = {**QUIET_EXPORT, **data}
        merged.setdefault("data", {}).setdefault("root", str(folder / "dataset"))
        path.write_text(yaml.safe_dump(merged, sort_keys=False))
    elif isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return path


def run_cmd(folder: Path, config: dict | str | bytes, *extra: str) -> list[str]:
    return ["run", str(write_config(folder, config)), "--run-dir", str(folder / "run"), *extra]


def tiny_checkpoint(path: Path, in_channels: int = 1, **plan_changes) -> Path:
    """A real (untrained) medseg-nas checkpoint of the smallest network; `plan_changes` edit its
    data plan as a hand-crafted file would (a value of None drops the key)."""
    import torch

    from medseg_nas.model_io import save_model
    from medseg_nas.space import Genome, NetworkPlan, build_network

    genome = Genome(inputs=(0, 1, 1), ops=("conv3d_3", "conv2d_3", "identity", "p3d_3"), n_c=2, n_f=3, lr=1e-3)
    plan = {"target_spacing": [1.0, 1.0, 1.0], "patch_size": [16, 16, 16], "network_plan": NetworkPlan().to_dict(),
            "in_channels": in_channels, "n_classes": 2, "labels": {"0": "background", "1": "object"},
            "modality": {"0": "MRI"}, "normalization": [{"scheme": "zscore"}], "axcodes": "RAS",
            "median_shape": [16, 16, 16], "version": 1}
    plan = {k: v for k, v in {**plan, **plan_changes}.items() if v is not None}
    torch.manual_seed(0)
    net = build_network(genome, in_channels, 2, NetworkPlan())
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_model(path, net, genome, in_channels, 2, NetworkPlan(), plan)


def write_nifti(path: Path, shape: tuple[int, ...]) -> Path:
    import nibabel as nib
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.random.default_rng(0).normal(size=shape).astype(np.float32), np.eye(4)), str(path))
    return path


def synthetic_dataset(folder: Path, cases: int = 5) -> Path:
    """A small MSD-layout phantom dataset at folder/dataset (what write_config points data.root at)."""
    from data_prep import synthetic

    synthetic.generate(folder / "dataset", cases=cases, seed=0)
    return folder / "dataset"


def msd_download(folder: Path, change: Callable[[dict], None]) -> Path:
    """A downloaded MSD task (3 training cases, 1 test case) whose dataset.json `change` edits."""
    import json

    from data_prep.synthetic import write_msd_fixture

    src = write_msd_fixture(folder / "Task99_Phantom", cases=3, seed=1, appledouble=False)
    meta = json.loads((src / "dataset.json").read_text())
    change(meta)
    (src / "dataset.json").write_text(json.dumps(meta))
    return src


def prepare_cmd(src: Path) -> list[str]:
    return ["prepare", "msd", "--src", str(src), "--dst", str(src.parent / "out")]


# a MONAI-config `$` expression: Python that MONAI's ConfigParser would run (harmless here)
DOLLAR_EXPRESSION = "$__import__('os').getcwd()"


def searched_run_dir(d: Path, config: dict) -> tuple[Path, Path]:
    """(config file, d/run) as a search leaves the run directory before its first trial:
    config.yaml, split.json, plan.json, on a phantom dataset at d/dataset."""
    from medseg_nas.config import load_config, save_config
    from medseg_nas.nas.trial import prepare_data

    synthetic_dataset(d)
    path, run = write_config(d, config), d / "run"
    run.mkdir()
    cfg = load_config(path)
    save_config(cfg, run / "config.yaml")
    prepare_data(cfg, run)
    return path, run


def truncated_store_run(d: Path) -> tuple[Path, Path]:
    """(config, run) of a searched run directory whose trials.sqlite lost its second half."""
    import json as _json

    from medseg_nas.trial_store import TrialStore

    config, run = searched_run_dir(d, {})
    with TrialStore(run / "trials.sqlite") as st:
        for i in range(40):
            tid = st.start(f"k{i}", _json.dumps({"i": i, "pad": "x" * 400}), 0)
            st.finish(tid, "done", 0.5, 10.0, history=[{"epoch": 1, "pad": "y" * 400}])
    db = run / "trials.sqlite"
    db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
    return config, run


@contextlib.contextmanager
def held_lock(run_dir: Path, argv: list[str]):
    """`run_dir` locked by another live process, as a running `medseg-nas ARGV` would hold it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run_dir), "medseg-nas", *argv],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env())
    try:
        if holder.stdout.readline().strip() != "locked":
            raise RuntimeError(f"the process meant to hold {run_dir}'s lock did not take it")
        yield
    finally:
        holder.stdin.close()  # the holder's cue to release the lock and exit
        try:
            holder.wait(timeout=30)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait()


# a process holding a run directory's lock until its stdin closes (or it is killed); the details it
# records in the lock file are those of `medseg-nas ARGV...`
HOLD_LOCK = ("import sys; from medseg_nas.nas.run_lock import run_dir_lock; run = sys.argv[1]; sys.argv = sys.argv[2:]\n"
             "with run_dir_lock(run):\n    print('locked', flush=True); sys.stdin.read()")
