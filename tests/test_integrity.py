"""Run directories that lie: a corrupt best/model.pt, a split.json of another dataset, a search
in which every trial failed. Each gets one clear outcome instead of passing as fine."""

import json
import math

import pytest
import torch

from medseg_nas.testing import fake_search as fk
import medseg_nas.stages.retrain as rt
import medseg_nas.nas.runner as runner
from medseg_nas.cli import main as cli
from medseg_nas.config import config_from_dict, save_config
from medseg_nas.model_io import load_model
from medseg_nas.nas.trial import prepare_data
from medseg_nas.results import TrialResult
from medseg_nas.rundir import RunDir
from medseg_nas.space import Genome, SearchSpace, build_network, count_parameters
from medseg_nas.trial_store import TrialStore

GENOMES = [
    Genome(inputs=(0, 0, 0), ops=("conv3d_1",) * 4, n_c=2, n_f=3, lr=1e-3),
    Genome(inputs=(0, 1, 1), ops=("conv3d_3", "conv2d_3", "identity", "conv3d_1"), n_c=2, n_f=3, lr=1e-3),
]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from data_prep import synthetic

    root = tmp_path_factory.mktemp("integrity") / "data"
    synthetic.generate(root, cases=5, seed=0)
    return root


def _stub_fit(cfg, run_dir, genome, seed, device, progress):
    """What the Trainer returns, with untrained (seeded) weights."""
    from medseg_nas.data import DataPlan

    plan = DataPlan.from_dict(json.loads((run_dir / "plan.json").read_text()))
    torch.manual_seed(seed)
    net = build_network(genome, plan.in_channels, plan.n_classes, plan.network_plan)
    return TrialResult(history=[{"loss": 1.0, "train_dice": 0.1, "val_dice": 0.1}], train_dice=0.1,
                       val_dice=0.1, e_max=1, epochs_run=1, epochs_budget=1, n_params=1,
                       state_dict=net.state_dict()), plan


def test_corrupt_model_is_retrained_not_skipped(data_root, tmp_path, monkeypatch, capsys):
    from medseg_nas.stages.pipeline import stage_retrain

    cfg = config_from_dict({"name": "c", "data": {"root": str(data_root), "patch_size": [32, 32, 8], "augment": "none"},
                            "space": {"n_c": [2], "n_f": [3]}, "retrain": {"epochs": 1, "iters_per_epoch": 1}})
    run = tmp_path / "run"
    run.mkdir()
    save_config(cfg, run / "config.yaml")
    ctx = prepare_data(cfg, run)
    with TrialStore(run / "trials.sqlite") as st:
        for g, f1 in zip(GENOMES, (0.8, 0.6)):
            n = count_parameters(g, ctx.in_channels, ctx.n_classes, ctx.network_plan)
            st.finish(st.start(g.key(), g.to_json(), seed=0), "done", f1=f1, f2=math.log(n), n_params=n)
    monkeypatch.setattr(rt, "default_fit", _stub_fit)
    model = run / "best" / "model.pt"
    assert stage_retrain(cfg, RunDir(run), force=False) is True
    assert stage_retrain(cfg, RunDir(run), force=False) is False  # current: skipped
    capsys.readouterr()
    for corrupt in (model.read_bytes()[: model.stat().st_size // 2], b""):  # truncated, then zero bytes
        model.write_bytes(corrupt)
        assert stage_retrain(cfg, RunDir(run), force=False) is True
        out = capsys.readouterr().out
        assert "redone, the existing model is not usable" in out and str(model) in out and "=== retrain" in out
        assert load_model(model).extra["trial_id"] in (1, 2)


def test_stale_split_stops_the_search_at_once(data_root, tmp_path, monkeypatch, capsys):
    """A split.json naming a case the dataset lacks: one error naming both, no trial recorded."""
    monkeypatch.setattr(runner, "train_trial", fk.data_probe_trial)  # builds the run's real DataBundle
    config = fk.write_search_config(tmp_path / "c.yaml", data_root, tmp_path / "runs", budget=2)
    run = tmp_path / "run"
    run.mkdir()
    ids = [f"phantom_{i:03d}" for i in range(5)]
    (run / "split.json").write_text(json.dumps({"train": ["ghost_007"] + ids[:3], "val": [ids[3]], "test": [ids[4]]}))
    assert cli(["search", str(config), "--run-dir", str(run)]) == 1
    err = capsys.readouterr().err
    assert err.count("error: ") == 1 and str(run / "split.json") in err and "'ghost_007' (train)" in err, err
    with TrialStore(run / "trials.sqlite") as st:
        assert len(st) == 0  # stopped before any trial


def test_a_search_whose_trials_all_failed_exits_non_zero(data_root, tmp_path, monkeypatch, capsys):
    """Two failed trials (fewer than max_consecutive_failures): the search and `run` exit 1."""
    monkeypatch.setattr(runner, "train_trial", fk.failing_trial)
    config = fk.write_search_config(tmp_path / "c.yaml", data_root, tmp_path / "runs", budget=2)
    assert cli(["search", str(config), "--run-dir", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err
    assert err.count("error: ") == 1 and "all 2 trials of the search" in err and "RuntimeError: NaN loss" in err, err
    assert cli(["run", str(config), "--run-dir", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert err.count("error: ") == 1 and "all 2 trials of the search" in err, err
    # a search with a done trial among failures is a search: no error
    s = runner.run_search(config_from_dict(fk.TINY_CONFIG), tmp_path / "flaky", strategy=fk.TinyRandomStrategy(
        SearchSpace.from_config(config_from_dict(fk.TINY_CONFIG).space)), budget=2, trial_fn=fk.flaky_trial,
        progress=False)
    assert s.n_done == 1 and s.n_failed == 1
