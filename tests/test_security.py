"""Nothing read from a run directory or a model file runs code (issue 10, items 1-2).

Each crafted file carries a payload that would create `tmp_path/pwned` if it were unpickled or
evaluated; the user must get one clear error and the file must never appear.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from medseg_nas.testing import fake_search as fk
from medseg_nas.cli import main as cli
from medseg_nas.errors import ModelFileError
from medseg_nas.errors import SearchError
from medseg_nas.testing.fixtures import GENOME, PLAN, blob_volume, make_checkpoint, write_nifti

ROOT = Path(__file__).resolve().parents[1]


class _Payload:
    """Unpickling this creates the marker file (what a hostile strategy_state.json would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "pwned"))


def _expression(marker: Path) -> str:
    """A MONAI-config `$` expression that creates the marker file when evaluated."""
    return f"$__import__('pathlib').Path({str(marker)!r}).write_text('pwned')"


def _hostile_plan(marker: Path) -> dict:
    # no "normalization": the path on which inference built its transforms through ConfigParser
    plan = {k: v for k, v in PLAN.items() if k != "normalization"}
    plan["axcodes"] = _expression(marker)
    return plan


def _hostile_data_plan(model, marker: Path):
    """The loaded model's DataPlan, edited as a hostile exporter would (no normalisation, `$` axcodes)."""
    import dataclasses

    return dataclasses.replace(model.data_plan, normalization=[], axcodes=_expression(marker))


# -- run directory: strategy_state.json ---------------------------------------------------------


def _nsga2_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    fk.run_named(str(run), "nsga2", budget=6)
    return run


def test_pickled_strategy_state_is_refused_not_unpickled(tmp_path):
    run = _nsga2_run(tmp_path)
    marker = tmp_path / "pwned"
    path = run / "strategy_state.json"
    state = json.loads(path.read_text())
    blob = base64.b64encode(pickle.dumps(_Payload(marker))).decode("ascii")
    # the layout the pickling version wrote: pymoo's algorithm as a base64 pickle
    state["state"]["own"] = {"pymoo": blob, "batch_json": [], "batch_F": [], "handed": 0, "generations": 0}
    path.write_text(json.dumps(state))
    with pytest.raises(SearchError, match=r"strategy_state\.json: bad strategy state .*told_F"):
        fk.run_named(str(run), "nsga2", budget=8, resume=True)
    assert not marker.exists()


def test_nsga2_state_is_plain_json_and_resumes(tmp_path):
    run = _nsga2_run(tmp_path)
    own = json.loads((run / "strategy_state.json").read_text())["state"]["own"]
    assert "pymoo" not in own and own["told_F"], own.keys()
    s = fk.run_named(str(run), "nsga2", budget=9, resume=True)
    assert s.n_trials == 9


def test_tampered_nsga2_history_is_refused(tmp_path):
    """Replaying pymoo with objectives that do not match the trial history is refused."""
    run = _nsga2_run(tmp_path)
    path = run / "strategy_state.json"
    state = json.loads(path.read_text())
    state["state"]["own"]["told_F"][0][0][0] += 0.5
    path.write_text(json.dumps(state))
    with pytest.raises(SearchError, match="does not replay"):
        fk.run_named(str(run), "nsga2", budget=8, resume=True)


# -- model files: checkpoint and TorchScript metadata -------------------------------------------


@pytest.fixture()
def case(tmp_path) -> Path:
    return write_nifti(tmp_path / "in" / "case.nii.gz", blob_volume())


def _hostile_torchscript(tmp_path: Path, marker: Path) -> Path:
    from medseg_nas.stages.export import export_torchscript
    from medseg_nas.model_io import load_model

    model = load_model(make_checkpoint(tmp_path / "good.pt"))
    model.data_plan = _hostile_data_plan(model, marker)
    return export_torchscript(model, tmp_path / "hostile.ts")


def _one_clear_error(err: str, path: Path) -> None:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert str(path) in lines[0] and "data_plan.axcodes" in lines[0], lines[0]


def test_hostile_checkpoint_predict_cli_refuses(tmp_path, case):
    """The real command line, in a subprocess: exit 1, one `error:` line, nothing executed."""
    marker = tmp_path / "pwned"
    ckpt = make_checkpoint(tmp_path / "hostile.pt", plan=_hostile_plan(marker))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run(
        [sys.executable, "-m", "medseg_nas", "predict", str(ckpt), "-i", str(case), "-o", str(tmp_path / "out"),
         "--device", "cpu"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
    )
    assert out.returncode == 1, out.stderr[-2000:]
    _one_clear_error(out.stderr, ckpt)
    assert not marker.exists()


def test_hostile_checkpoint_export_refuses(tmp_path, case, capsys):
    marker = tmp_path / "pwned"
    ckpt = make_checkpoint(tmp_path / "run" / "best" / "model.pt", plan=_hostile_plan(marker))
    capsys.readouterr()
    assert cli(["export", str(tmp_path / "run"), "--case", str(case), "--format", "bundle"]) == 1
    _one_clear_error(capsys.readouterr().err, ckpt)
    assert not marker.exists()
    assert not (tmp_path / "run" / "best" / "bundle").exists()


def test_hostile_torchscript_predict_and_export_refuse(tmp_path, case, capsys):
    marker = tmp_path / "pwned"
    ts = _hostile_torchscript(tmp_path, marker)
    capsys.readouterr()
    assert cli(["predict", str(ts), "-i", str(case), "-o", str(tmp_path / "out"), "--device", "cpu"]) == 1
    _one_clear_error(capsys.readouterr().err, ts)
    assert cli(["export", str(tmp_path / "run"), "--model", str(ts), "--case", str(case), "--format", "bundle"]) == 1
    _one_clear_error(capsys.readouterr().err, ts)
    assert not marker.exists()
    assert not (tmp_path / "run" / "best" / "bundle").exists()


def test_torchscript_with_unreadable_metadata_is_one_clear_error(tmp_path):
    import torch

    from medseg_nas.model_io import TS_META, load_model

    net = torch.jit.trace(torch.nn.Conv3d(1, 2, 1), torch.zeros(1, 1, 4, 4, 4))
    torch.jit.save(net, str(tmp_path / "m.ts"), _extra_files={TS_META: "{not json"})
    with pytest.raises(ModelFileError, match=r"m\.ts: its medseg_nas\.json metadata is not valid JSON"):
        load_model(tmp_path / "m.ts")


# -- the schema itself ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field,value",
    [
        ("axcodes", "RRS"),
        ("axcodes", "$RAS"),
        ("labels", {"0": "background", "1": "@network_def"}),
        ("labels", {"x": "a"}),
        ("modality", {"0": "%configs/other.json#net"}),
        ("modality", "$print(1)"),
        ("normalization", [{"scheme": "ct", "clip": [0.0, 1.0], "mean": float("nan"), "std": 1.0}]),
        ("normalization", [{"scheme": "ct", "clip": [0.0, 1.0], "mean": 0.0, "std": 0.0}]),
        ("normalization", [{"scheme": "zscore", "extra": "$x"}]),
        ("normalization", [{"scheme": "$x"}]),
        ("target_spacing", [1.0, -1.0, 2.0]),
        ("target_spacing", [1.0, float("inf"), 2.0]),
        ("patch_size", [32, 32, "16"]),
        ("patch_size", [32, 32, True]),
        ("network_plan", {"strides": [[2, 2, 2]] * 3}),
        ("network_plan", {"strides": [[2, 2, 2]] * 4, "cell": "$x"}),
        ("in_channels", 1.5),
        ("hook", "$x"),
    ],
)
def test_schema_refuses_each_bad_field(tmp_path, field, value):
    import torch

    from medseg_nas.model_io import load_model

    ckpt = make_checkpoint(tmp_path / "m.pt")
    raw = torch.load(ckpt, weights_only=True)
    raw["data_plan"] = dict(PLAN, **{field: value})  # as a hand-crafted file would hold it
    torch.save(raw, ckpt)
    with pytest.raises(ModelFileError, match=rf"m\.pt: refusing model metadata, data_plan\.{field}"):
        load_model(ckpt)


@pytest.mark.parametrize("axcodes", ["RAS", "LPI", "ASR", "SLP"])
def test_schema_accepts_real_plans(tmp_path, axcodes):
    from medseg_nas.model_io import load_model
    from medseg_nas.plan_schema import validate_data_plan

    ct = {"scheme": "ct", "clip": [-100.0, 300], "mean": 50.0, "std": 20.0}
    plan = dict(PLAN, axcodes=axcodes, in_channels=2, normalization=[ct, {"scheme": "zscore"}],
                modality={"0": "non-contrast CT", "1": "T2-weighted (fs)"}, labels={"0": "background", "1": "left ventricle"})
    assert validate_data_plan(plan, "x") is plan
    assert load_model(make_checkpoint(tmp_path / "m.pt", plan=plan)).data_plan.to_dict() == plan


def test_bad_genome_and_labels_in_a_checkpoint(tmp_path):
    import torch

    from medseg_nas.model_io import load_model

    path = make_checkpoint(tmp_path / "m.pt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["labels"] = {0: "background", 1: "$x"}
    torch.save(ckpt, path)
    with pytest.raises(ModelFileError, match=r"refusing model metadata, labels\[1\]"):
        load_model(path)
    ckpt["labels"] = {0: "background"}
    ckpt["genome"] = dict(GENOME.to_dict(), ops=["$x"] * 4)
    torch.save(ckpt, path)
    with pytest.raises(ModelFileError, match="refusing model metadata, genome: not a valid genome"):
        load_model(path)


def test_build_transforms_never_evaluates(tmp_path):
    """The MONAI-only preprocessing is built without a config parser: an unknown `$` is refused."""
    from medseg_nas.errors import MedsegError
    from medseg_nas.inference import build_transforms

    marker = tmp_path / "pwned"
    with pytest.raises(MedsegError, match="refusing to evaluate"):
        build_transforms([{"_target_": "Orientationd", "keys": "image", "axcodes": _expression(marker)}])
    with pytest.raises(MedsegError, match="unknown MONAI transform"):
        build_transforms([{"_target_": "__import__", "name": "os"}])
    assert not marker.exists()
