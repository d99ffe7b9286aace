"""Pre-flight: `run` (and search / retrain / export) refuse what would fail later, before any
stage spends time — one `error:` line, exit 1, and the search never starts."""

import importlib.util
import re
import sys

import pytest
import torch
import yaml

from medseg_nas.stages import pipeline
from medseg_nas.cli import main
from medseg_nas.config import config_from_dict
from medseg_nas.data.plan import plan_patch
from medseg_nas.errors import ConfigError
from medseg_nas.preflight import nearest_patch_sizes, patch_axis_ok, preflight
from medseg_nas.space.plan import plan_from_spacing

QUIET = {"export": {"formats": ["torchscript"]}}
N_KEY, T_KEY = "N", "T"  # SaMEA's population / neighbourhood sizes, the authors' names


@pytest.fixture
def no_stage_runs(monkeypatch):
    """Any stage starting is a failure of the pre-flight."""
    def started(*args, **kwargs):
        raise AssertionError("a stage started before the pre-flight refused the config")

    for name in ("stage_prepare", "stage_search", "stage_retrain", "stage_evaluate", "stage_export"):
        monkeypatch.setattr(pipeline, name, started)


def _run(tmp_path, capsys, data: dict, *extra: str) -> str:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**QUIET, "data": {"root": str(tmp_path / "ds")}, **data}))
    rc = main(["run", str(cfg), "--run-dir", str(tmp_path / "run"), *extra])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 1 and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("data, match", [
    ({"retrain": {"epochs": 0}}, r"'retrain.epochs' in .*c.yaml is 0: it must be >= 1"),
    ({"retrain": {"iters_per_epoch": 0}}, r"'retrain.iters_per_epoch' .* must be >= 1"),
    ({"retrain": {"seconds": -1}}, r"'retrain.seconds' .* must be >= 0"),
    ({"retrain": {"pick": "kne"}}, r"'retrain.pick' .* 'kne': use knee, best, smallest or a trial id; did you mean 'knee'"),
    ({"retrain": {"pick": "-3"}}, r"'retrain.pick' .* '-3'"),
    ({"train": {"device": "gpu"}}, r"'train.device' .* 'gpu', not a device"),
    ({"search": {"samea": {N_KEY: 1, T_KEY: 1}}}, rf"search\.samea.*\b{N_KEY}\b.*>= 2"),
    ({"search": {"samea": {N_KEY: 4, T_KEY: 6}}}, rf"search\.samea.*\b{T_KEY}\b"),
    ({"search": {"strategy": "nsga2", "nsga2": {"pop_size": 1}}}, r"'search.nsga2.pop_size' .* must be >= 2"),
    ({"search": {"strategy": "dmls", "dmls": {"initial_archive_size": 0}}}, r"'search.dmls.initial_archive_size' .* must be >= 1"),
    ({"search": {"budget_trials": -2, "budget_hours": 1.0}}, r"'search.budget_trials' .* -2"),
    ({"data": {"n_folds": 5, "fold": 5}}, r"'data.fold' .* is 5: with data.n_folds = 5 it must be in 0..4"),
    ({"data": {"n_folds": 0, "fold": 2}}, r"'data.fold' .* is 2 but data.n_folds is 0"),
    ({"data": {"n_folds": 1}}, r"'data.n_folds' .* is 1"),
    ({"data": {"patch_size": [30, 30, 30]}}, r"'data.patch_size' .* \[30, 30, 30\]: axis 0 \(30\) .* use 28 or 32"),
    ({"data": {"patch_size": [32, 32]}}, r"'data.patch_size' .* 3 integers"),
])
def test_run_refuses_before_any_stage(tmp_path, capsys, no_stage_runs, data, match):
    data = dict(data)
    data.setdefault("data", {})["root"] = str(tmp_path / "ds")
    line = _run(tmp_path, capsys, data)
    assert re.search(match, line), line


def test_unused_strategy_blocks_are_not_checked():
    # an NSGA-II-only setting does not stop a DMLS search (its block is unused)
    preflight(config_from_dict({"search": {"strategy": "dmls", "nsga2": {"pop_size": 1}}}), ["search"])
    with pytest.raises(ConfigError, match="pop_size"):
        preflight(config_from_dict({"search": {"strategy": "nsga2", "nsga2": {"pop_size": 1}}}), ["search"])


def test_cuda_device_without_cuda(tmp_path, capsys, no_stage_runs, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    line = _run(tmp_path, capsys, {"train": {"device": "cuda"}})
    assert "'train.device'" in line and "'cuda' but CUDA is not available on this machine" in line


def test_cuda_index_beyond_the_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    preflight(config_from_dict({"train": {"device": "cuda:1"}}), ["search"])
    with pytest.raises(ConfigError, match=r"'cuda:2' but this machine has 2 CUDA device\(s\): use cuda:0..cuda:1"):
        preflight(config_from_dict({"train": {"device": "cuda:2"}}), ["search"])


def _hide(monkeypatch, *names):
    """As after a plain `pip install medseg-nas`: the export extra's packages are absent."""
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name.split(".")[0] in names else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    for name in names:
        monkeypatch.delitem(sys.modules, name, raising=False)


def test_onnx_export_without_the_export_extra_fails_at_once(tmp_path, capsys, no_stage_runs, monkeypatch):
    _hide(monkeypatch, "onnx", "onnxruntime")
    line = _run(tmp_path, capsys, {"export": {"formats": ["torchscript", "onnx"]}})
    assert "export format 'onnx' needs onnx and onnxruntime" in line and "pip install 'medseg-nas[export]'" in line


def test_blocked_module_counts_as_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ConfigError, match="needs onnxruntime, not installed"):
        preflight(config_from_dict({"export": {"formats": ["onnx"]}}), ["export"])


def test_torchscript_only_needs_no_extra_and_fire_is_a_warning(monkeypatch):
    _hide(monkeypatch, "onnx", "onnxruntime", "fire")
    assert preflight(config_from_dict({"export": {"formats": ["torchscript"]}})) == []
    warnings = preflight(config_from_dict({"export": {"formats": ["bundle"]}}))
    assert len(warnings) == 1 and "fire" in warnings[0] and "medseg-nas[export]" in warnings[0]


def test_export_cli_checks_packages_before_the_model(tmp_path, capsys, monkeypatch):
    _hide(monkeypatch, "onnx", "onnxruntime")
    rc = main(["export", str(tmp_path), "--format", "onnx"])
    err = capsys.readouterr().err
    assert rc == 1 and "needs onnx and onnxruntime" in err and "model.pt" not in err


def test_ray_executor_without_ray(monkeypatch):
    _hide(monkeypatch, "ray")
    with pytest.raises(ConfigError, match=r"'ray' but ray is not installed: pip install 'medseg-nas\[ray\]'"):
        preflight(config_from_dict({"executor": {"kind": "ray"}}), ["search"])


def test_search_cli_preflight_applies_command_line_strategy(tmp_path, capsys, monkeypatch):
    import medseg_nas.nas.runner as runner

    monkeypatch.setattr(runner, "run_search", lambda *a, **k: pytest.fail("the search started"))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"search": {"nsga2": {"pop_size": 1}}}))
    assert main(["search", str(cfg), "--strategy", "nsga2"]) == 1
    assert "'search.nsga2.pop_size'" in capsys.readouterr().err


def test_retrain_cli_checks_device_and_pick_first(tmp_path, capsys, monkeypatch):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"data": {"root": str(tmp_path / "ds")}}))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["retrain", str(tmp_path), "--device", "cuda"]) == 1
    assert "--device is 'cuda' but CUDA is not available" in capsys.readouterr().err
    assert main(["retrain", str(tmp_path), "--pick", "smalest"]) == 1
    assert "did you mean 'smallest'" in capsys.readouterr().err


def test_valid_config_passes_and_defaults_pass():
    assert preflight(config_from_dict({"export": {"formats": ["torchscript"]}})) == []
    preflight(config_from_dict({"data": {"patch_size": [64, 48, 32], "n_folds": 5, "fold": 4},
                                "retrain": {"pick": "12"}, "export": {"formats": ["torchscript"]}}))


def test_patch_rule_is_exactly_the_planners_parity_rule():
    # valid ⇔ the stride plan halves the axis as often as its length allows (no odd length in the way)
    for n in range(4, 200):
        halvings = sum(s[0] == 2 for s in plan_from_spacing([1.0, 1.0, 1.0], [n, n, n]).strides)
        unblocked = sum(1 for k in range(4) if n // 2 ** k // 2 >= 4)
        assert patch_axis_ok(n) == (halvings == unblocked), n
    assert nearest_patch_sizes(30) == [28, 32] and nearest_patch_sizes(100) == [96, 112]
    assert all(patch_axis_ok(n) for n in nearest_patch_sizes(61))


@pytest.mark.timeout(120)
def test_planned_patches_always_pass():
    # what the planner chooses itself must never be refused (and it must finish: with a small
    # max_patch_voxels and a thick-slice axis it used to loop forever on an axis already at 8)
    for shape in ([36, 50, 35], [320, 320, 20], [180, 220, 60], [9, 9, 9], [500, 40, 8], [63, 127, 255]):
        for spacing in ([1.0, 1.0, 1.0], [0.7, 0.7, 3.0], [1.5, 1.5, 10.0]):
            for voxels in (96 * 96 * 64, 64 ** 3, 16 ** 3):
                patch = plan_patch(shape, spacing, voxels)
                assert all(patch_axis_ok(p) for p in patch), (shape, spacing, voxels, patch)


def test_shipped_configs_pass_preflight():
    from pathlib import Path

    from medseg_nas.config import load_config

    for path in sorted(Path(__file__).resolve().parents[1].joinpath("configs").glob("*.yaml")):
        preflight(load_config(path), ["search", "retrain", "evaluate"], str(path))


