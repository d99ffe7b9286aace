"""Read-only views of a run directory for the stages after the search.

The search stage writes `config.yaml`, `split.json`, `plan.json` and `trials.sqlite`; retrain,
evaluate, export and report read them through these helpers, so each stage needs only the run
directory.
"""

from __future__ import annotations

import json
from pathlib import Path

from medseg_nas.config import Config, load_config
from medseg_nas.errors import DataError, MedsegError
from medseg_nas.space.network import LEGACY_CELL


def run_config(run_dir: str | Path, overrides: list[str] | None = None) -> Config:
    """The run's saved config; a run saved before `space.cell` existed keeps its residual cell
    (whatever today's default is), so its trials and checkpoints rebuild the network they trained."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise MedsegError(f"{run_dir} is not a run directory (no config.yaml); run `medseg-nas search CONFIG` first")
    cfg = load_config(path, overrides)
    if not any(o.startswith("space.cell=") for o in overrides or []) and not saved_cell(path):
        cfg.space.cell = LEGACY_CELL
    return cfg


def saved_cell(config_yaml: Path) -> str | None:
    """`space.cell` as written in a saved config.yaml (None: saved before the key existed)."""
    import yaml

    space = (yaml.safe_load(config_yaml.read_text()) or {}).get("space") or {}
    return space.get("cell") if isinstance(space, dict) else None


def run_split(run_dir: str | Path) -> dict[str, list[str]]:
    path = Path(run_dir) / "split.json"
    if not path.is_file():
        raise MedsegError(f"{path} does not exist; the search stage writes it")
    try:
        from medseg_nas.data import Split

        s = Split.load(path)
        return {"train": list(s.train), "val": list(s.val), "test": list(s.test)}
    except ImportError:
        d = json.loads(path.read_text())
        return {k: list(d.get(k, [])) for k in ("train", "val", "test")}


def datalist(root: str | Path) -> list[dict]:
    """`{"id", "image", "label"}` for the training cases of an MSD-layout folder."""
    root = Path(root)
    try:
        from medseg_nas.data import load_datalist

        return [dict(d) for d in load_datalist(root)]
    except ImportError:
        pass
    ds = root / "dataset.json"
    if not ds.is_file():
        raise DataError(f"{ds} does not exist")
    out = []
    for item in json.loads(ds.read_text()).get("training", []):
        img = (root / item["image"]).resolve()
        name = img.name
        for suf in (".nii.gz", ".nii"):
            if name.endswith(suf):
                name = name[: -len(suf)]
        out.append({"id": name, "image": str(img), "label": str((root / item["label"]).resolve())})
    return out


def run_cases(run_dir: str | Path, subset: str = "test") -> list[dict]:
    """The datalist entries of one split subset ("train" | "val" | "test"), in split order."""
    cfg = run_config(run_dir)
    ids = run_split(run_dir)[subset]
    by_id = {d["id"]: d for d in datalist(cfg.data.root)}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise DataError(f"split.json of {run_dir} names cases missing from {cfg.data.root}: {missing[:5]}")
    return [by_id[i] for i in ids]


def run_plan(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "plan.json"
    if not path.is_file():
        raise MedsegError(f"{path} does not exist; the search stage writes it")
    return json.loads(path.read_text())


def best_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "best"
