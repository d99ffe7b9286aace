"""The retrained-model checkpoint `best/model.pt` and loading any model file we write.

Format (docs/ARCHITECTURE.md, "Pipeline"): a plain dict saved with `torch.save`

    {"format": "medseg-nas/1", "genome": dict, "in_channels": int, "n_classes": int,
     "network_plan": dict, "data_plan": dict, "labels": {int: str}, "state_dict": {...},  # data_plan: DataPlan.to_dict()
     "cell": str,             # space.CELLS; absent in older checkpoints, which are "residual"
     "extra": {...}}          # optional: pick, trial id, history summary, ...

Only tensors and plain Python values are stored, so `torch.load(weights_only=True)` reads it
and no class of ours is pickled: a checkpoint survives refactors of the package. Every loaded
checkpoint and TorchScript metadata passes medseg_nas.plan_schema before use, so a model file
from a stranger carries weights and checked values only, never code; only then is its plan read
into a `DataPlan` (older spellings included, see DataPlan.from_model_file).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medseg_nas.data.plan import DataPlan
from medseg_nas.errors import MedsegError, ModelFileError
from medseg_nas.plan_schema import validate_metadata
from medseg_nas.space import CELLS, Genome, NetworkPlan, build_network
from medseg_nas.space.network import LEGACY_CELL

FORMAT = "medseg-nas/1"
REQUIRED = ("genome", "in_channels", "n_classes", "network_plan", "data_plan", "labels", "state_dict")
# name of the JSON metadata file embedded in TorchScript exports (torch.jit _extra_files)
TS_META = "medseg_nas.json"


@dataclass
class LoadedModel:
    """A network ready for inference plus everything needed to reproduce its preprocessing."""

    network: nn.Module
    genome: Genome | None
    in_channels: int
    n_classes: int
    network_plan: NetworkPlan
    data_plan: DataPlan
    labels: dict[int, str]
    extra: dict = field(default_factory=dict)
    path: Path | None = None
    cell: str = LEGACY_CELL

    def metadata(self) -> dict:
        """JSON-able description (no weights): embedded in exports."""
        return {
            "format": FORMAT,
            "genome": self.genome.to_dict() if self.genome is not None else None,
            "cell": self.cell,
            "in_channels": self.in_channels,
            "n_classes": self.n_classes,
            "network_plan": self.network_plan.to_dict(),
            "data_plan": self.data_plan.to_dict(),
            "labels": {str(k): v for k, v in self.labels.items()},
            "postprocess": self.extra.get("postprocess"),
        }


def _plan_dict(plan: Any) -> dict:
    if plan is None:
        return {}
    if isinstance(plan, dict):
        return json.loads(json.dumps(plan))
    if hasattr(plan, "to_dict"):
        return json.loads(json.dumps(plan.to_dict()))
    raise TypeError(f"cannot serialise plan of type {type(plan).__name__}")


def save_model(
    path: str | Path,
    network_or_state: nn.Module | dict,
    genome: Genome,
    in_channels: int,
    n_classes: int,
    network_plan: NetworkPlan | dict | None,
    data_plan: Any,
    labels: dict | None = None,
    extra: dict | None = None,
    cell: str = LEGACY_CELL,
) -> Path:
    """Write a checkpoint in the documented format (atomically: tmp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = network_or_state.state_dict() if isinstance(network_or_state, nn.Module) else network_or_state
    state = {k: v.detach().cpu().clone() for k, v in state.items()}
    if network_plan is None:
        network_plan = NetworkPlan()
    data_plan_d = _plan_dict(data_plan)
    if labels is None:
        labels = data_plan_d.get("labels") or {i: f"class_{i}" for i in range(n_classes)}
    ckpt = {
        "format": FORMAT,
        "genome": genome.to_dict(),
        "cell": str(cell),
        "in_channels": int(in_channels),
        "n_classes": int(n_classes),
        "network_plan": _plan_dict(network_plan),
        "data_plan": data_plan_d,
        "labels": {int(k): str(v) for k, v in labels.items()},
        "state_dict": state,
        "extra": json.loads(json.dumps(extra or {})),
    }
    return _save_atomically(ckpt, path)


def _save_atomically(ckpt: dict, path: Path) -> Path:
    """torch.save to a temporary file, then rename: a crash never leaves half a model file."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(path)
    return path


def set_model_extra(path: str | Path, key: str, value: Any) -> Path:
    """Record `value` under extra[key] of the checkpoint at `path` (atomically), e.g. the
    post-processing decided after the retrain: it travels with the weights it was decided for."""
    path = Path(path)
    ckpt = read_checkpoint(path)
    ckpt["extra"] = {**(ckpt.get("extra") or {}), key: json.loads(json.dumps(value))}
    return _save_atomically(ckpt, path)


def read_checkpoint(path: str | Path) -> dict:
    """The raw checkpoint dict, validated; MedsegError naming the file when it is not ours."""
    path = Path(path)
    if not path.is_file():
        raise MedsegError(f"model file {path} does not exist")
    if path.stat().st_size == 0:  # an interrupted copy: torch's own message is cryptic
        raise MedsegError(f"model file {path} is empty (0 bytes); copy or export it again")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # zip/pickle errors, unsafe globals, truncated files
        raise MedsegError(
            f"{path} is not a medseg-nas checkpoint (torch.load failed: {(str(exc) or type(exc).__name__).splitlines()[0][:200]}); "
            "expected best/model.pt written by `medseg-nas retrain`"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        fmt = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise MedsegError(f"{path} is not a medseg-nas checkpoint (format {fmt!r}, expected {FORMAT!r})")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise MedsegError(f"{path}: checkpoint is missing {', '.join(missing)}")
    return validate_metadata(ckpt, path)


def _labels(d: dict | None, n_classes: int) -> dict[int, str]:
    if not d:
        return {i: ("background" if i == 0 else f"class_{i}") for i in range(n_classes)}
    return {int(k): str(v) for k, v in d.items()}


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load `best/model.pt` (our checkpoint) or a TorchScript `model.ts` we exported, in eval mode."""
    path = Path(path)
    if path.is_dir():
        for cand in (path / "best" / "model.pt", path / "model.pt"):
            if cand.is_file():
                path = cand
                break
        else:
            raise MedsegError(f"{path} is a folder without best/model.pt or model.pt")
    if path.is_file() and path.stat().st_size == 0:  # an interrupted copy: torch's own message is cryptic
        raise MedsegError(f"model file {path} is empty (0 bytes); copy or export it again")
    if path.suffix == ".ts":
        return load_torchscript(path, device)
    if path.suffix == ".onnx":  # ours or not, it carries no PyTorch weights: say what to use instead
        raise MedsegError(f"{path} is an ONNX model: give best/model.pt or best/model.ts "
                          "(the ONNX export is for onnxruntime and other runtimes)")
    ckpt = read_checkpoint(path)
    genome = Genome.from_dict(ckpt["genome"])
    cell = _cell(ckpt, path)
    plan = NetworkPlan.from_dict(ckpt["network_plan"]) if ckpt["network_plan"] else NetworkPlan()
    net = build_network(genome, int(ckpt["in_channels"]), int(ckpt["n_classes"]), plan, cell)
    try:
        net.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise MedsegError(f"{path}: weights do not match genome {genome.describe()} with the {cell!r} cell: "
                          f"{str(exc)[:300]}") from None
    net.to(device).eval()
    in_channels, n_classes = int(ckpt["in_channels"]), int(ckpt["n_classes"])
    labels = _labels(ckpt["labels"], n_classes)
    return LoadedModel(
        network=net,
        genome=genome,
        in_channels=in_channels,
        n_classes=n_classes,
        network_plan=plan,
        data_plan=DataPlan.from_model_file(ckpt["data_plan"], in_channels, n_classes, plan, labels),
        labels=labels,
        extra=dict(ckpt.get("extra") or {}),
        path=path,
        cell=cell,
    )


def _cell(meta: dict, path: Path) -> str:
    """The checkpoint's or export's cell; files from before `space.cell` existed are residual."""
    cell = meta.get("cell", LEGACY_CELL)
    if cell not in CELLS:
        raise MedsegError(f"{path}: unknown cell {cell!r} (expected one of {', '.join(CELLS)})")
    return cell


def load_torchscript(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """A TorchScript export carrying our metadata (TS_META extra file)."""
    path = Path(path)
    files = {TS_META: ""}
    try:
        net = torch.jit.load(str(path), map_location=device, _extra_files=files)
    except Exception as exc:
        raise MedsegError(f"{path} is not a TorchScript model: {str(exc).splitlines()[0][:200]}") from None
    if not files[TS_META]:
        raise MedsegError(f"{path} is TorchScript but carries no medseg-nas metadata; export it with `medseg-nas export`")
    try:
        meta = json.loads(files[TS_META])
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: its {TS_META} metadata is not valid JSON ({exc})") from None
    validate_metadata(meta, path)
    try:
        in_channels, n_classes = int(meta["in_channels"]), int(meta["n_classes"])
        network_plan = NetworkPlan.from_dict(meta["network_plan"]) if meta.get("network_plan") else NetworkPlan()
        labels = _labels(meta.get("labels"), n_classes)
        return LoadedModel(
            network=net.eval(),
            genome=Genome.from_dict(meta["genome"]) if meta.get("genome") else None,
            in_channels=in_channels,
            n_classes=n_classes,
            network_plan=network_plan,
            data_plan=DataPlan.from_model_file(meta["data_plan"], in_channels, n_classes, network_plan, labels),
            labels=labels,
            extra={"postprocess": meta["postprocess"]} if meta.get("postprocess") else {},
            path=path,
            cell=_cell(meta, path),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # wrong shapes the schema lets through
        raise ModelFileError(
            f"{path}: its medseg-nas metadata ({TS_META}) is malformed ({type(exc).__name__}: {str(exc)[:200]}); "
            "export the model again with `medseg-nas export`"
        ) from None
