"""End to end: `medseg-nas run` on a tiny synthetic config, then every artefact is checked."""

import csv
import json
import math

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml

from medseg_nas.cli import main as cli

TINY = {
    "name": "e2e",
    "data": {"prepare": {"source": "synthetic", "cases": 8, "seed": 0}, "val_fraction": 0.25,
             "test_fraction": 0.25, "patch_size": [32, 32, 8], "augment": "none"},
    "space": {"n_c": [2], "n_f": [3], "ops": ["conv3d_1", "conv3d_3", "conv2d_3", "identity"], "lr_grid": 3},
    "train": {"epochs": 2, "iters_per_epoch": 2, "batch_size": 2, "patience": 2, "device": "cpu"},
    "search": {"strategy": "random", "budget_trials": 3, "seed": 0},
    "retrain": {"pick": "knee", "epochs": 2, "iters_per_epoch": 2, "patience": 2},
}


def tiny_yaml(tmp_path):
    """TINY with its run root and data under `tmp_path`, written to `tmp_path / "tiny.yaml"`."""
    cfg = dict(TINY, run_root=str(tmp_path / "runs"))
    cfg["data"] = dict(TINY["data"], root=str(tmp_path / "data" / "phantoms"))
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))


def test_run_end_to_end(tmp_path, capsys):
    """~15 s on 2 CPU cores: in the default suite, not marked slow."""
    tiny_yaml(tmp_path)
    run_dir = tmp_path / "runs" / "e2e"
    assert cli(["run", str(tmp_path / "tiny.yaml")]) == 0
    out = capsys.readouterr().out
    assert "test Dice per class" in out and "report.html" in out and "wall-clock: prepare" in out
    assert "test HD95 per class (mm): " in out and "cost: " in out and "GMACs per patch" in out
    times = json.loads((run_dir / "stage_times.json").read_text())["runs"]
    assert len(times) == 1 and times[0]["completed"] is True
    assert set(times[0]["seconds"]) == {"prepare", "search", "retrain", "evaluate", "export", "report"}
    assert times[0]["total_s"] >= times[0]["seconds"]["search"] > 0
    import torch

    # which libraries the numbers came from (two runs of one config once differed without saying why)
    assert times[0]["versions"]["torch"] == torch.__version__ and times[0]["versions"]["monai"]

    # search artefacts
    from medseg_nas.trial_store import TrialStore

    with TrialStore(run_dir / "trials.sqlite") as st:
        assert st.count(("done", "failed")) == 3 and st.count("done") >= 1
    front = json.loads((run_dir / "front.json").read_text())
    assert front["front"]

    # retrained model
    from medseg_nas.model_io import load_model
    from medseg_nas.rundir import RunDir

    best = run_dir / "best"
    model = load_model(best / "model.pt")
    info = json.loads((best / "retrain.json").read_text())
    assert info["trial_id"] in {e["id"] for e in front["front"]}
    assert json.loads((best / "history.json").read_text())["history"]

    # metrics in [0, 1] and consistent with the saved predictions on the original grid
    cases = RunDir(run_dir).cases("test")
    with open(best / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(cases) * (model.n_classes - 1)
    for case in cases:
        pred_img = nib.load(str(best / "predictions" / f"{case['id']}_seg.nii.gz"))
        lab_img = nib.load(case["label"])
        assert pred_img.shape == lab_img.shape and np.allclose(pred_img.affine, lab_img.affine, atol=1e-5)
        pred, lab = np.asarray(pred_img.dataobj), np.rint(np.asarray(lab_img.dataobj))
        for r in (r for r in rows if r["case"] == case["id"]):
            assert 0.0 <= float(r["dice"]) <= 1.0
            p, g = pred == int(r["label"]), lab == int(r["label"])
            dice = 2 * (p & g).sum() / (p.sum() + g.sum()) if (p.sum() + g.sum()) else 1.0
            assert abs(dice - float(r["dice"])) < 1e-4
    summary = json.loads((best / "summary.json").read_text())
    assert 0.0 <= summary["mean_dice"] <= 1.0

    # TorchScript / ONNX logits equal PyTorch on a real preprocessed case
    import onnxruntime as ort

    from medseg_nas.stages.export import case_input

    x = case_input(model, cases[0]["image"])
    with torch.no_grad():
        ref = model.network(x).numpy()
        ts = torch.jit.load(str(best / "model.ts"))(x).numpy()
    sess = ort.InferenceSession(str(best / "model.onnx"), providers=["CPUExecutionProvider"])
    assert np.abs(ts - ref).max() < 1e-4
    assert np.abs(sess.run(None, {"image": x.numpy()})[0] - ref).max() < 1e-3

    # the MONAI bundle loads and segments a case onto its own grid
    from monai.bundle import ConfigParser, run

    bundle = best / "bundle"
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser.update({"bundle_root": str(bundle)})
    assert parser.get_parsed_content("network") is not None
    run(config_file=str(bundle / "configs" / "inference.json"), bundle_root=str(bundle),
        dataset_dir=cases[0]["image"], output_dir=str(tmp_path / "bundle_out"))
    seg = next((tmp_path / "bundle_out").glob("*_seg.nii.gz"))
    img = nib.load(cases[0]["image"])
    assert nib.load(str(seg)).shape[:3] == img.shape[:3]

    # predict: NIfTI in → NIfTI out with the input's affine; agrees with the bundle
    assert cli(["predict", str(run_dir), "-i", cases[0]["image"], "-o", str(tmp_path / "pred")]) == 0
    out_img = nib.load(str(next((tmp_path / "pred").glob("*_seg.nii.gz"))))
    assert out_img.shape == img.shape[:3] and np.array_equal(out_img.affine, img.affine)
    agree = (np.asarray(out_img.dataobj) == np.asarray(nib.load(str(seg)).dataobj).reshape(out_img.shape)).mean()
    assert agree > 0.99

    html = (run_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4
    assert not math.isnan(front["hypervolume"])

    # a second `run` finds everything complete
    assert cli(["run", str(tmp_path / "tiny.yaml")]) == 0
    assert "=== " not in capsys.readouterr().out


def test_a_stopped_run_still_records_its_stage_times(tmp_path, monkeypatch):
    """The resumed run's wall-clock is the sum over invocations, so a stop must not lose the first one's."""
    from medseg_nas.stages import pipeline

    def stop(cfg, run):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "stage_search", stop)
    tiny_yaml(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_pipeline(pipeline.load_config(tmp_path / "tiny.yaml"))
    times = json.loads((tmp_path / "runs" / "e2e" / "stage_times.json").read_text())["runs"]
    assert len(times) == 1 and times[0]["completed"] is False and set(times[0]["seconds"]) == {"prepare", "search"}


def test_stage_times_are_on_disk_as_each_stage_ends(tmp_path, monkeypatch):
    """A SIGKILL (a session cut, a lost machine) runs no `finally`: the search's seconds must already be written
    when the retrain starts, or a retrain killed hours in takes the search's wall-clock with it."""
    from medseg_nas.stages import pipeline

    seen = {}

    def killed(cfg, run, force):
        seen.update(json.loads(run.stage_times_json.read_text()))
        raise SystemExit(137)

    monkeypatch.setattr(pipeline, "stage_retrain", killed)
    tiny_yaml(tmp_path)

    with pytest.raises(SystemExit):
        pipeline.run_pipeline(pipeline.load_config(tmp_path / "tiny.yaml"))
    assert len(seen["runs"]) == 1 and seen["runs"][0]["completed"] is False
    assert set(seen["runs"][0]["seconds"]) == {"prepare", "search"} and seen["runs"][0]["seconds"]["search"] > 0
    # the invocation's own `finally` then rewrites its one entry, never appends a second
    times = json.loads((tmp_path / "runs" / "e2e" / "stage_times.json").read_text())["runs"]
    assert len(times) == 1 and set(times[0]["seconds"]) == {"prepare", "search", "retrain"}
