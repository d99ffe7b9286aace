"""retrain → evaluate → export → report → run on a real (synthetic) run directory whose search
trials are written straight into the store and whose training is a stub (no Trainer needed)."""

import copy
import csv
import json
import math

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml

from medseg_nas.cli import main as cli
from medseg_nas.config import config_from_dict, save_config
from medseg_nas.errors import ConfigError, MedsegError
from medseg_nas.results import TrialResult
from medseg_nas.space import Genome, build_network, count_parameters
from medseg_nas.trial_store import TrialStore

GENOMES = [
    Genome(inputs=(0, 0, 0), ops=("conv3d_1",) * 4, n_c=2, n_f=3, lr=1e-3),
    Genome(inputs=(0, 1, 2), ops=("conv3d_3", "conv2d_3", "identity", "conv3d_1"), n_c=2, n_f=3, lr=1e-3),
    Genome(inputs=(0, 1, 1), ops=("conv3d_3",) * 4, n_c=2, n_f=3, lr=3e-3),
    Genome(inputs=(0, 1, 2), ops=("conv3d_3",) * 4, n_c=2, n_f=3, lr=1e-3),  # dominated
]
F1 = [0.9, 0.6, 0.5, 0.7]


def tiny_config(root, run_root):
    return config_from_dict({
        "name": "stages", "run_root": str(run_root),
        "data": {"root": str(root), "val_fraction": 0.25, "test_fraction": 0.25, "patch_size": [32, 32, 8],
                 "augment": "none"},
        "space": {"n_c": [2], "n_f": [3]},
        "train": {"epochs": 2, "iters_per_epoch": 2, "device": "cpu"},
        "search": {"strategy": "random", "budget_trials": 4},
        "retrain": {"epochs": 2, "iters_per_epoch": 2},
        "export": {"formats": ["torchscript", "onnx"]},
    })


def stub_fit(cfg, run_dir, genome, seed, device, progress):
    """What the Trainer returns, with untrained (seeded) weights."""
    from medseg_nas.data import DataPlan

    plan = DataPlan.from_dict(json.loads((run_dir / "plan.json").read_text()))
    torch.manual_seed(seed)
    net = build_network(genome, plan.in_channels, plan.n_classes, plan.network_plan)
    hist = [{"loss": 1.2 - 0.1 * e, "train_dice": 0.1 * e, "val_dice": 0.08 * e, "val_dice_per_class": [0.1, 0.2, 0.3]}
            for e in range(1, 3)]
    return TrialResult(history=hist, train_dice=0.2, val_dice=0.16, e_max=2, epochs_run=2, epochs_budget=2,
                       seconds=0.1, n_params=sum(p.numel() for p in net.parameters()), state_dict=net.state_dict()), plan


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_stage_run(tmp_path_factory.mktemp("stages"))


def make_stage_run(base):
    """(config, run directory) of a finished search under `base`: 8 synthetic cases, the GENOMES done
    with objectives F1 and one failed trial, no Trainer involved."""
    from data_prep.synthetic import generate
    from medseg_nas.nas.trial import prepare_data

    generate(base / "data", cases=8, seed=0)
    cfg = tiny_config(base / "data", base / "runs")
    run_dir = base / "runs" / "stages"
    run_dir.mkdir(parents=True)
    save_config(cfg, run_dir / "config.yaml")
    ctx = prepare_data(cfg, run_dir)
    with TrialStore(run_dir / "trials.sqlite") as st:
        for g, f1 in zip(GENOMES, F1):
            tid = st.start(g.key(), g.to_json(), seed=0)
            n = count_parameters(g, ctx.in_channels, ctx.n_classes, ctx.network_plan)
            st.finish(tid, "done", f1=f1, f2=math.log(n), n_params=n, result={"val_dice": 1 - f1})
        tid = st.start("x", GENOMES[0].to_json(), seed=0)
        st.finish(tid, "failed", error="CUDA out of memory")
    return cfg, run_dir


def test_pick_rules(run):
    from medseg_nas.stages.retrain import pick_trial

    _, run_dir = run
    with TrialStore(run_dir / "trials.sqlite") as st:
        rows = st.rows()
    assert pick_trial(rows, "best")[0].id == 3
    assert pick_trial(rows, "smallest")[0].id == 1
    assert pick_trial(rows, "knee")[0].id in (1, 2, 3)  # on the front, never the dominated trial 4
    assert pick_trial(rows, "2")[0].id == 2
    with pytest.raises(MedsegError, match="failed, not done"):
        pick_trial(rows, "5")
    with pytest.raises(MedsegError, match="no trial 99"):
        pick_trial(rows, "99")
    with pytest.raises(MedsegError, match="--pick must be"):
        pick_trial(rows, "largest")


def test_pick_under_a_parameter_cap(run):
    from medseg_nas.stages.retrain import pick_trial, trial_params

    _, run_dir = run
    with TrialStore(run_dir / "trials.sqlite") as st:
        rows = st.rows()
    best = pick_trial(rows, "best")[0]
    cap = trial_params(best) - 1  # the most accurate trial is now too large
    row, why = pick_trial(rows, "best", cap)
    assert row.id != best.id and trial_params(row) <= cap and f"<= {cap:,} parameters" in why
    assert min(trial_params(r) for r in rows if r.status == "done" and trial_params(r) <= cap) <= trial_params(row)
    assert trial_params(pick_trial(rows, "knee", cap)[0]) <= cap
    assert pick_trial(rows, str(best.id), cap)[0].id == best.id  # an id is taken as asked
    assert pick_trial(rows, "best", 0)[0].id == best.id
    with pytest.raises(MedsegError, match="retrain.max_params = 10"):
        pick_trial(rows, "best", 10)


def test_retrain_evaluate_export_report(run, capsys):
    from medseg_nas.postprocess import keep_largest_component
    from medseg_nas.stages.evaluate import evaluate_run
    from medseg_nas.stages.export import export_all
    from medseg_nas.model_io import load_model
    from medseg_nas.stages.report import build_report
    from medseg_nas.stages.retrain import retrain
    from medseg_nas.rundir import RunDir

    cfg, run_dir = run
    info = retrain(run_dir, "best", fit_fn=stub_fit)
    best = run_dir / "best"
    assert info["trial_id"] == 3 and Genome.from_dict(json.loads((best / "genome.json").read_text())) == GENOMES[2]
    m = load_model(best / "model.pt")
    assert m.genome == GENOMES[2] and m.n_classes == 4 and m.extra["trial_id"] == 3
    with pytest.raises(MedsegError, match="already exists"):
        retrain(run_dir, "best", fit_fn=stub_fit)

    summary = evaluate_run(run_dir, device="cpu", log=lambda s: None)
    test_cases = RunDir(run_dir).cases("test")
    assert summary["n_cases"] == len(test_cases) >= 1
    with open(best / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 * len(test_cases)
    for r in rows:
        assert 0.0 <= float(r["dice"]) <= 1.0
    # metrics agree with the saved predictions, which sit on the label's grid with its affine
    for case in test_cases:
        pred_img = nib.load(str(best / "predictions" / f"{case['id']}_seg.nii.gz"))
        lab_img = nib.load(case["label"])
        assert pred_img.shape == lab_img.shape and np.allclose(pred_img.affine, lab_img.affine)
        pred, lab = np.asarray(pred_img.dataobj), np.asarray(lab_img.dataobj)
        for r in (r for r in rows if r["case"] == case["id"]):
            k = int(r["label"])
            p, g = pred == k, lab == k
            dice = 2 * (p & g).sum() / max(p.sum() + g.sum(), 1) if (p.sum() + g.sum()) else 1.0
            assert abs(dice - float(r["dice"])) < 1e-4
        # the largest-component figures are of the same prediction, each class reduced to its largest piece
        entry = next(c for c in summary["cases"] if c["id"] == case["id"])
        kept = keep_largest_component(pred, [1, 2, 3])
        for name, v in entry["largest_component"]["classes"].items():
            k = next(int(r["label"]) for r in rows if r["name"] == name)
            p, g = kept == k, lab == k
            dice = 2 * (p & g).sum() / max(p.sum() + g.sum(), 1) if (p.sum() + g.sum()) else 1.0
            assert abs(dice - v["dice"]) < 1e-4
    lcc = summary["largest_component"]
    assert set(lcc["classes"]) == set(summary["classes"]) and 0 <= lcc["mean_dice"] <= 1

    # --model/--data: every case of an MSD folder, outputs where asked
    root = cfg.data.root
    assert cli(["evaluate", "--model", str(best / "model.pt"), "--data", root, "--output", str(run_dir / "ext")]) == 0
    ext = json.loads((run_dir / "ext" / "summary.json").read_text())
    assert ext["n_cases"] == 8 and 0 <= ext["mean_dice"] <= 1
    assert cli(["evaluate", "--model", str(best / "model.pt")]) == 1  # --data missing: one clear error
    assert cli(["retrain", str(run_dir), "--pick", "largest", "--force"]) == 1

    report = export_all(best / "model.pt", best, ["torchscript", "onnx"], test_cases[0]["image"], log=lambda s: None)
    assert report["onnx"]["max_abs_diff"] < 1e-3 and report["torchscript"]["max_abs_diff"] < 1e-4
    for fmt in ("torchscript", "onnx"):  # timed on the same median-shaped volume, the same threads
        lat = report[fmt]["latency"]
        assert lat["ms_per_volume"] > 0 and lat["threads"] == torch.get_num_threads()
        assert lat["volume_shape"] == m.data_plan.median_shape
    costs = summary["costs"]
    assert costs["n_params"] == count_parameters(GENOMES[2], 1, 4, m.network_plan) and costs["predict_ms_per_volume"] > 0
    html = build_report(run_dir).read_text()
    assert html.count("data:image/png;base64,") >= 3 and "mean foreground" in html
    assert cli(["report", str(run_dir)]) == 0


def test_run_skips_complete_stages(run, monkeypatch, capsys):
    """`run` on a finished search: retrain..report happen once, a second run skips all of them."""
    import medseg_nas.stages.retrain as rt
    from medseg_nas.stages.pipeline import run_pipeline

    cfg, run_dir = run
    (run_dir / "front.json").write_text(json.dumps({"name": "stages", "n_trials": 5, "front": [], "hypervolume": 0.5}))
    monkeypatch.setattr(rt, "default_fit", stub_fit)
    cfg.retrain.pick = "knee"
    run_pipeline(cfg, run_dir)
    out = capsys.readouterr().out
    assert "search: complete" in out and "=== retrain" in out and "test Dice per class" in out
    stamp = (run_dir / "best" / "model.pt").stat().st_mtime
    run_pipeline(cfg, run_dir)
    out = capsys.readouterr().out
    for stage in ("retrain", "evaluate", "export", "report"):
        assert f"{stage}: " in out and "skipped" in out
    assert "=== " not in out
    assert (run_dir / "best" / "model.pt").stat().st_mtime == stamp
    # a changed evaluation setting redoes evaluate (and the report) only
    cfg.predict.tta = True
    run_pipeline(cfg, run_dir)
    out = capsys.readouterr().out
    assert "=== evaluate" in out and "=== report" in out and "=== retrain" not in out and "=== export" not in out
    assert json.loads((run_dir / "best" / "summary.json").read_text())["tta"] is True
    # a changed retrain budget redoes retrain and everything after it
    cfg.retrain.iters_per_epoch += 1
    run_pipeline(cfg, run_dir)
    out = capsys.readouterr().out
    assert "=== retrain" in out and "=== evaluate" in out and "=== export" in out
    assert json.loads((run_dir / "best" / "retrain.json").read_text())["iters_per_epoch"] == cfg.retrain.iters_per_epoch
    # ... and the run's config.yaml now says so (a report or summary read from it is not stale)
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["retrain"]["iters_per_epoch"] == cfg.retrain.iters_per_epoch and saved["retrain"]["pick"] == "knee"
    run_pipeline(cfg, run_dir)
    assert "=== retrain" not in capsys.readouterr().out
    # the retrain's own augmentation is part of what it was made with
    assert json.loads((run_dir / "best" / "retrain.json").read_text())["augment"] == cfg.data.augment
    cfg.retrain.augment = "full"
    run_pipeline(cfg, run_dir)
    assert "=== retrain" in capsys.readouterr().out
    assert json.loads((run_dir / "best" / "retrain.json").read_text())["augment"] == "full"
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["retrain"]["augment"] == "full"
    # ... and so is its wall-clock budget
    cfg.retrain.seconds = 900.0
    run_pipeline(cfg, run_dir)
    assert "=== retrain" in capsys.readouterr().out
    assert json.loads((run_dir / "best" / "retrain.json").read_text())["seconds_budget"] == 900.0
    run_pipeline(cfg, run_dir)
    assert "=== retrain" not in capsys.readouterr().out


def test_retrain_augment_replaces_the_searchs_for_the_retrain_only(run):
    """`retrain.augment` changes the retrain's training transforms, not the search's data.augment."""
    from monai.transforms import RandAffined, RandFlipd

    from medseg_nas.stages.retrain import retrain_data

    cfg, run_dir = run
    kinds = lambda bundle: {type(t) for t in bundle.train.transform.transforms}  # noqa: E731
    cfg = copy.deepcopy(cfg)  # the fixture's config is shared with other tests
    cfg.retrain.augment = ""
    assert cfg.data.augment == "none"
    bundle, _ = retrain_data(cfg, run_dir, 0)
    assert RandFlipd not in kinds(bundle)
    cfg.retrain.augment = "full"
    bundle, _ = retrain_data(cfg, run_dir, 0)
    assert {RandFlipd, RandAffined} <= kinds(bundle) and cfg.data.augment == "none"
    with pytest.raises(ConfigError, match="retrain.augment"):
        config_from_dict({"retrain": {"augment": "heavy"}})


def test_prepare_stage_builds_reuses_and_refuses(tmp_path, capsys):
    """Missing data: built from data.prepare; same settings: reused untouched; changed settings
    or no source: one clear error, exit 1, no run directory created."""
    from medseg_nas.errors import DataError
    from medseg_nas.stages.pipeline import stage_prepare

    root = tmp_path / "d"
    cfg = config_from_dict({"name": "p", "data": {"root": str(root), "prepare": {"source": "synthetic", "cases": 4}}})
    assert stage_prepare(cfg) is True
    stamp = (root / "dataset.json").stat().st_mtime_ns
    assert stage_prepare(cfg) is False and (root / "dataset.json").stat().st_mtime_ns == stamp
    cfg.data.prepare.cases = 6
    with pytest.raises(DataError, match="already holds a dataset prepared with"):
        stage_prepare(cfg)
    assert (root / "dataset.json").stat().st_mtime_ns == stamp

    (tmp_path / "missing.yaml").write_text(f"name: m\nrun_root: {tmp_path / 'runs'}\ndata: {{root: {tmp_path / 'nope'}}}\n")
    assert cli(["run", str(tmp_path / "missing.yaml")]) == 1
    assert "does not exist and data.prepare.source is empty" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_retrain_keeps_a_monitor_slice_out_of_training():
    """With include_val the curve/best epoch come from validation cases the retrain never trains on."""
    from medseg_nas.stages.retrain import monitor_split

    train, val = ["a", "b", "c"], ["v1", "v2", "v3", "v4"]
    trained, monitor, held = monitor_split(train, val, include_val=True, monitor_fraction=0.25)
    assert monitor == ["v1"] and held and not set(monitor) & set(trained)
    assert set(trained) == {"a", "b", "c", "v2", "v3", "v4"}
    assert monitor_split(train, val, True, 0.01)[1] == ["v1"]  # at least one case
    trained, monitor, held = monitor_split(train, val, include_val=True, monitor_fraction=0)
    assert monitor == val and not held and set(val) <= set(trained)  # stated, not hidden
    assert monitor_split(train, val, include_val=False, monitor_fraction=0.25) == (train, val, True)


def test_retrain_json_says_what_the_curve_is_measured_on(run):
    from medseg_nas.stages.retrain import retrain

    _, run_dir = run
    info = retrain(run_dir, "best", fit_fn=stub_fit, force=True)
    assert info["monitor_held_out"] is True and info["monitor_cases"]


@pytest.mark.parametrize("seconds, expected", [(0.0, None), (1800.0, 1800.0)])
def test_retrain_seconds_reach_the_trainer_as_a_wall_clock_budget(monkeypatch, tmp_path, seconds, expected):
    """retrain.seconds bounds the retrain by the clock (the epochs become a cap); 0 leaves the
    epoch budget alone."""
    import medseg_nas.stages.retrain as rt
    import medseg_nas.train as train_pkg

    calls = []

    class Recorder:
        def __init__(self, *a, **k):
            pass

        def fit(self, genome, **kw):
            calls.append(kw)
            return "result"

    monkeypatch.setattr(train_pkg, "Trainer", Recorder)
    monkeypatch.setattr(rt, "retrain_data", lambda cfg, run_dir, seed: (None, "plan"))
    cfg = config_from_dict({"retrain": {"epochs": 7, "iters_per_epoch": 3, "patience": 0, "seconds": seconds}})
    assert rt.default_fit(cfg, tmp_path, GENOMES[0], 0, "cpu", False) == ("result", "plan")
    assert calls == [{"seed": 0, "epochs": 7, "iters_per_epoch": 3, "patience": 0, "seconds": expected}]


def test_a_retrain_off_its_trials_seed_says_so(run):
    """The pick trained at seed 0: a retrain at seed 0 is silent about seeds, one at seed 3 names both
    seeds in its log and retrain.json keeps the trial's seed beside its own."""
    from medseg_nas.stages.retrain import retrain

    _, run_dir = run
    lines: list[str] = []
    info = retrain(run_dir, "best", fit_fn=stub_fit, force=True, log=lines.append)
    assert info["seed"] == info["trial_seed"] == 0 and not any("train.seed" in s for s in lines)
    lines.clear()
    info = retrain(run_dir, "best", overrides=["train.seed=3"], fit_fn=stub_fit, force=True, log=lines.append)
    assert (info["seed"], info["trial_seed"]) == (3, 0)
    notes = [s for s in lines if "note: train.seed is 3" in s]
    assert len(notes) == 1 and "trained at seed 0" in notes[0] and "train.seed=0" in notes[0]
