"""The largest-component post-processing: decided on the monitor cases after the retrain, carried by
the model file and its exports, applied by evaluate and predict, and never chosen by the test split."""

import json

import nibabel as nib
import numpy as np
import pytest

from medseg_nas.cli import main as cli
from medseg_nas.config import config_from_dict
from medseg_nas.errors import ConfigError
from medseg_nas.postprocess import apply_postprocess, decide_largest_component, keep_largest_component
from tests.test_pipeline_stages import make_stage_run, stub_fit

CLASSES = {1: "a", 2: "b", 3: "c"}


def _entry(cid, raw, lcc):
    return {"id": cid, "classes": {n: {"dice": d} for n, d in zip(CLASSES.values(), raw)},
            "largest_component": {"classes": {n: {"dice": d} for n, d in zip(CLASSES.values(), lcc)}}}


def test_a_class_is_reduced_only_when_that_raises_its_mean_dice():
    per_case = [_entry("x", (0.5, 0.7, 0.9), (0.6, 0.7, 0.8)),   # a +0.1, b tie, c -0.1
                _entry("y", (0.5, 0.7, 0.9), (0.5, 0.7, 0.95))]  # c: mean 0.875 < 0.9 -> not applied
    d = decide_largest_component(per_case, CLASSES)
    assert d["largest_component"] == [1] and d["decided_on"] == ["x", "y"] and d["mode"] == "auto"
    assert d["per_class"]["a"]["applied"] and not d["per_class"]["b"]["applied"] and not d["per_class"]["c"]["applied"]
    assert d["per_class"]["c"] == {"class": 3, "dice_raw": 0.9, "dice_largest_component": 0.875, "applied": False}
    with pytest.raises(ValueError):
        decide_largest_component([], CLASSES)


def test_a_bad_postprocess_mode_is_one_clear_config_error(tmp_path):
    with pytest.raises(ConfigError, match="predict.postprocess.*largest_compnent"):
        config_from_dict({"predict": {"postprocess": "largest_compnent"}})


@pytest.fixture()
def run(tmp_path):
    return make_stage_run(tmp_path)


def test_retrain_decides_on_the_monitor_cases_and_evaluate_applies_it(run):
    from medseg_nas.model_io import load_model
    from medseg_nas.rundir import RunDir
    from medseg_nas.stages.evaluate import evaluate_run
    from medseg_nas.stages.retrain import retrain

    cfg, run_dir = run
    info = retrain(run_dir, "best", fit_fn=stub_fit, log=lambda s: None)
    best = run_dir / "best"
    decision = json.loads((best / "postprocess.json").read_text())
    monitor = info["monitor_cases"]
    assert info["monitor_held_out"] and decision["decided_on"] == monitor
    test_ids = [c["id"] for c in RunDir(run_dir).cases("test")]
    assert not set(decision["decided_on"]) & set(test_ids)  # the test split does not choose what is applied to it
    assert load_model(best / "model.pt").extra["postprocess"] == decision == info["postprocess"]
    # the per-class Dice it rests on are the monitor cases' own, raw and reduced
    mon = json.loads((best / "monitor_eval" / "summary.json").read_text())
    assert [c["id"] for c in mon["cases"]] == monitor and mon["raw"] is None
    for name, d in decision["per_class"].items():
        assert d["dice_raw"] == round(mon["classes"][name]["dice"]["mean"], 4)
        assert d["dice_largest_component"] == round(mon["largest_component"]["classes"][name]["dice"]["mean"], 4)
        assert d["applied"] == (d["dice_largest_component"] > d["dice_raw"])

    summary = evaluate_run(run_dir, device="cpu", log=lambda s: None)
    assert summary["postprocess"] == decision


def test_largest_component_mode_is_applied_to_evaluate_predict_and_exports(run, tmp_path):
    from medseg_nas.model_io import load_model
    from medseg_nas.rundir import RunDir
    from medseg_nas.stages.evaluate import evaluate_run
    from medseg_nas.stages.export import bundle_inference_config, export_all
    from medseg_nas.stages.retrain import retrain

    cfg, run_dir = run
    cfg.predict.postprocess = "largest_component"
    retrain(run_dir, "best", fit_fn=stub_fit, cfg=cfg, log=lambda s: None)
    best = run_dir / "best"
    model = load_model(best / "model.pt")
    assert model.extra["postprocess"]["largest_component"] == [1, 2, 3]
    summary = evaluate_run(run_dir, device="cpu", log=lambda s: None, cfg=cfg)
    assert summary["raw"] is not None and summary["postprocess"]["mode"] == "largest_component"
    # what evaluate scored and saved is the reduced output; its raw figures stand beside it
    assert summary["mean_dice"] == pytest.approx(summary["largest_component"]["mean_dice"])
    case = RunDir(run_dir).cases("test")[0]
    saved = np.asarray(nib.load(str(best / "predictions" / f"{case['id']}_seg.nii.gz")).dataobj)
    assert np.array_equal(saved, keep_largest_component(saved, [1, 2, 3]))

    # predict applies it too; --no-postprocess writes the raw output, which reduces to the same map
    assert cli(["predict", str(best / "model.pt"), "-i", case["image"], "-o", str(tmp_path / "pp")]) == 0
    assert cli(["predict", str(best / "model.pt"), "-i", case["image"], "-o", str(tmp_path / "raw"),
                "--no-postprocess"]) == 0
    pp = np.asarray(nib.load(str(next((tmp_path / "pp").iterdir()))).dataobj)
    raw = np.asarray(nib.load(str(next((tmp_path / "raw").iterdir()))).dataobj)
    assert np.array_equal(pp, saved) and np.array_equal(apply_postprocess(raw, [1, 2, 3]), pp)

    # the TorchScript export carries the decision; the bundle applies it with MONAI's transform
    export_all(best / "model.pt", best, ["torchscript"], case["image"], log=lambda s: None)
    assert load_model(best / "model.ts").extra["postprocess"] == model.extra["postprocess"]
    steps = bundle_inference_config(model)["postprocessing"]["transforms"]
    keep = [s for s in steps if s["_target_"] == "KeepLargestConnectedComponentd"]
    assert len(keep) == 1 and keep[0]["applied_labels"] == [1, 2, 3]
    assert [s["_target_"] for s in steps].index("KeepLargestConnectedComponentd") == \
        [s["_target_"] for s in steps].index("AsDiscreted") + 1


def test_none_mode_and_a_model_from_before_the_decision(run):
    from medseg_nas.model_io import load_model, set_model_extra
    from medseg_nas.stages.evaluate import evaluate_run
    from medseg_nas.stages.export import bundle_inference_config
    from medseg_nas.stages.retrain import retrain

    cfg, run_dir = run
    cfg.predict.postprocess = "none"
    retrain(run_dir, "best", fit_fn=stub_fit, cfg=cfg, log=lambda s: None)
    model_pt = run_dir / "best" / "model.pt"
    summary = evaluate_run(run_dir, device="cpu", log=lambda s: None, cfg=cfg)
    assert summary["raw"] is None and summary["postprocess"]["largest_component"] == []
    assert not any(s["_target_"] == "KeepLargestConnectedComponentd"
                   for s in bundle_inference_config(load_model(model_pt))["postprocessing"]["transforms"])
    # a model retrained before the decision existed: evaluate decides first, under the run's mode
    set_model_extra(model_pt, "postprocess", None)
    assert not load_model(model_pt).extra.get("postprocess")
    cfg.predict.postprocess = "auto"
    summary = evaluate_run(run_dir, device="cpu", log=lambda s: None, cfg=cfg)
    assert summary["postprocess"]["mode"] == "auto" and summary["postprocess"]["decided_on"]
    assert load_model(model_pt).extra["postprocess"] == summary["postprocess"]


def test_a_model_file_with_a_malformed_decision_is_refused_naming_the_file(run):
    import torch

    from medseg_nas.errors import ModelFileError
    from medseg_nas.model_io import load_model
    from medseg_nas.stages.retrain import retrain

    cfg, run_dir = run
    cfg.predict.postprocess = "none"
    retrain(run_dir, "best", fit_fn=stub_fit, cfg=cfg, log=lambda s: None)
    path = run_dir / "best" / "model.pt"
    ckpt = torch.load(path, weights_only=True)
    for bad in ({"largest_component": ["1; rm"]}, {"largest_component": [7]}, "all", {"largest_component": 1}):
        ckpt["extra"]["postprocess"] = bad
        torch.save(ckpt, path)
        with pytest.raises(ModelFileError, match="model.pt.*postprocess"):
            load_model(path)
