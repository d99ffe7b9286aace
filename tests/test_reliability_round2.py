"""Issue 30's hostile inputs, one test each: non-finite voxels (prepare, training, predict),
unwritable predict outputs, damaged run directories (trials.sqlite, strategy_state.json,
config.yaml), a split that cannot train, a YAML alias bomb. Each ends in one clear error line
(or, where the store holds the truth, a warning and a correct result), never a traceback."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from medseg_nas.cli import main as cli
from medseg_nas.config import config_from_dict
from medseg_nas.errors import SearchError
from medseg_nas.nas.runner import run_search
from medseg_nas.trial_store import TrialStore
from medseg_nas.space.genome import SearchSpace
from medseg_nas.testing import fake_search as fk
from medseg_nas.testing.reliability import builders as RT


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    rc = cli([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out, err


def error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


def poison(path: Path, value: float = np.nan, count: int = 1) -> Path:
    img = nib.load(str(path))
    data = np.asarray(img.dataobj, dtype=np.float32).copy()
    data.flat[:count] = value  # .flat: nibabel's arrays are Fortran-ordered, reshape(-1) would copy
    header = img.header.copy()
    header.set_data_dtype(np.float32)  # an integer file cannot hold NaN: rewritten as float, as a user's tool would
    out = nib.Nifti1Image(data, img.affine, header)
    out.header.set_slope_inter(1, 0)
    nib.save(out, str(path))
    return path


# 1. non-finite voxels ------------------------------------------------------------------------


def test_prepare_msd_refuses_nan_voxels_naming_file_and_count(tmp_path, capsys):
    src = RT.msd_download(tmp_path, lambda m: None)
    bad = poison(src / "imagesTr" / "phantom_001.nii.gz", np.nan, count=3)
    rc, _, err = run_cli(capsys, "prepare", "msd", "--src", src, "--dst", tmp_path / "out")
    line = error_line(err)
    assert rc == 1 and str(bad) in line and "3 non-finite voxel(s) (3 NaN, 0 infinite)" in line
    assert "--nonfinite" in line
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_prepare_msd_can_repair_nonfinite_voxels_when_asked(tmp_path, capsys):
    src = RT.msd_download(tmp_path, lambda m: None)
    poison(src / "imagesTr" / "phantom_001.nii.gz", np.inf, count=2)
    rc, out, _ = run_cli(capsys, "prepare", "msd", "--src", src, "--dst", tmp_path / "out", "--nonfinite", "min")
    assert rc == 0 and "replaced 2 non-finite image voxel(s) (min)" in out
    fixed = nib.load(str(tmp_path / "out" / "imagesTr" / "phantom_001.nii.gz"))
    data = np.asarray(fixed.dataobj)
    assert np.isfinite(data).all() and data.reshape(-1)[0] == data.min()
    assert np.allclose(fixed.affine, nib.load(str(src / "imagesTr" / "phantom_001.nii.gz")).affine)
    stamp = json.loads((tmp_path / "out" / "dataset.json").read_text())["medseg_nas_prepare"]
    assert stamp["nonfinite"] == "min" and stamp["nonfinite_repaired"] == 2


def test_prepare_acdc_refuses_infinite_voxels(tmp_path, capsys):
    from data_prep.synthetic import write_acdc_fixture

    src = write_acdc_fixture(tmp_path / "training", patients=2, seed=0)
    frame = sorted(p for p in src.rglob("*_frame*.nii.gz") if not p.name.endswith("_gt.nii.gz"))[0]
    poison(frame, np.inf)
    rc, _, err = run_cli(capsys, "prepare", "acdc", "--src", src, "--dst", tmp_path / "out")
    assert rc == 1 and str(frame) in error_line(err) and "1 non-finite voxel(s) (0 NaN, 1 infinite)" in err


def test_search_on_an_msd_folder_with_nan_is_refused_before_any_trial(tmp_path, capsys):
    # a dataset that never went through `prepare` (data.root pointed at it directly)
    root = RT.synthetic_dataset(tmp_path)
    bad = poison(root / "imagesTr" / "phantom_002.nii.gz")
    config = RT.write_config(tmp_path, {})
    rc, _, err = run_cli(capsys, "search", config, "--run-dir", tmp_path / "run")
    assert rc == 1 and f"image file {bad} has 1 non-finite voxel(s)" in error_line(err)
    assert not (tmp_path / "run" / "trials.sqlite").exists() or len(TrialStore(tmp_path / "run" / "trials.sqlite")) == 0


def test_trial_whose_validation_output_is_not_finite_fails():
    import torch

    from medseg_nas.config import TrainConfig
    from medseg_nas.space import Genome
    from medseg_nas.testing.toy import ToyBundle
    from medseg_nas.train import Trainer

    bundle = ToyBundle(n_train=2, n_val=1, shape=(16, 16, 16), patch=(16, 16, 16), seed=0)
    image = torch.as_tensor(bundle.val[0]["image"]).clone()
    image.view(-1)[0] = float("nan")  # a NaN outside every training patch: the loss stays finite
    bundle.val[0]["image"] = image
    genome = Genome(inputs=(0, 1, 2), ops=("conv3d_3", "conv2d_3", "identity", "identity"), n_c=2, n_f=3, lr=3e-3)
    cfg = TrainConfig(epochs=1, iters_per_epoch=1, batch_size=1, patience=0, val_every=1, sw_batch_size=1)
    r = Trainer(cfg, bundle, bundle.plan, device="cpu", progress=False).fit(genome, seed=0)
    assert r.status == "failed" and "non-finite network output on validation volume 1 (NaN/Inf in its image)" in r.error


# 2. predict on an image with one NaN voxel ------------------------------------------------------


def test_predict_refuses_an_image_with_one_nan_voxel(tmp_path, capsys):
    model = RT.tiny_checkpoint(tmp_path / "model.pt")
    img = poison(RT.write_nifti(tmp_path / "in" / "one_nan_voxel.nii.gz", (16, 16, 16)))
    RT.write_nifti(tmp_path / "in" / "good.nii.gz", (16, 16, 16))
    rc, out, err = run_cli(capsys, "predict", model, "-i", tmp_path / "in", "-o", tmp_path / "out")
    assert rc == 1 and f"{img} has 1 non-finite voxel(s) (1 NaN, 0 infinite)" in error_line(err)
    assert "1 written, 0 kept, 1 failed" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good_seg.nii.gz"]  # no empty mask written


# 3. an output path that is not a writable folder -----------------------------------------------


@pytest.mark.parametrize("kind", ["existing file", "under a file", "unwritable"])
def test_predict_output_that_is_not_a_writable_folder(tmp_path, capsys, kind, monkeypatch):
    model = RT.tiny_checkpoint(tmp_path / "model.pt")
    image = RT.write_nifti(tmp_path / "img.nii.gz", (16, 16, 16))
    (tmp_path / "afile").write_text("x")
    out = {"existing file": tmp_path / "afile", "under a file": tmp_path / "afile" / "out",
           "unwritable": tmp_path / "ro" / "out"}[kind]
    expected = {"existing file": "exists and is not a folder", "under a file": f"{tmp_path / 'afile'} is a file, not a folder",
                "unwritable": "is not a writable folder (Permission denied)"}[kind]
    if kind == "unwritable":
        (tmp_path / "ro").mkdir()
        real_mkdir = Path.mkdir

        def denied(self, *a, **k):  # root ignores chmod: deny as a read-only mount would
            if str(self).startswith(str(tmp_path / "ro")):
                raise PermissionError(13, "Permission denied", str(self))
            return real_mkdir(self, *a, **k)

        monkeypatch.setattr(Path, "mkdir", denied)
    rc, _, err = run_cli(capsys, "predict", model, "-i", image, "-o", out)
    assert rc == 1 and f"--output {out}" in error_line(err) and expected in err


# 4. a truncated trials.sqlite ------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["search", "report"])
def test_truncated_trials_sqlite_is_named_and_left_untouched(tmp_path, capsys, stage):
    config, run = RT.truncated_store_run(tmp_path)
    damaged = (run / "trials.sqlite").read_bytes()
    argv = ["search", config, "--resume", "--run-dir", run] if stage == "search" else ["report", run]
    rc, _, err = run_cli(capsys, *argv)
    line = error_line(err)
    assert rc == 1 and f"trial store {run / 'trials.sqlite'} is damaged" in line
    assert "trial row(s) are still readable" in line and "left as it is" in line
    assert (run / "trials.sqlite").read_bytes() == damaged


# 5. a corrupt strategy_state.json -----------------------------------------------------------------


def test_corrupt_strategy_state_is_rebuilt_from_the_store(tmp_path, capsys):
    run = tmp_path / "r"
    fk.run_fake(str(run), budget=4)
    state = run / "strategy_state.json"
    state.write_text('{"strategy": "random", "state": {')  # truncated mid-write by another tool
    s = fk.run_fake(str(run), budget=7, resume=True, progress=True)
    out = capsys.readouterr().out
    assert "strategy_state.json is not readable JSON" in out and "rebuilding" in out
    assert (run / "strategy_state.json.damaged").read_text() == '{"strategy": "random", "state": {'
    assert s.n_trials == 7 and s.n_new == 3  # the 4 finished genomes were told from the store
    assert fk.front_of(s) == fk.front_of(fk.run_fake(str(tmp_path / "ref"), budget=7))


# 6. a corrupt config.yaml in the run directory -----------------------------------------------------


@pytest.mark.parametrize("stage", ["search", "retrain", "export"])
def test_corrupt_run_config_is_one_error_for_every_stage(tmp_path, capsys, stage):
    config, run = RT.searched_run_dir(tmp_path, {})
    (run / "config.yaml").write_text("train: {epochs: 3\n")
    argv = {"search": ["search", config, "--resume", "--run-dir", run], "retrain": ["retrain", run],
            "export": ["export", run]}[stage]
    if stage == "export":
        RT.tiny_checkpoint(run / "best" / "model.pt")
    rc, _, err = run_cli(capsys, *argv)
    assert rc == 1 and error_line(err).startswith(f"error: config file {run / 'config.yaml'} is not valid YAML")


# 7. a split with no training cases ------------------------------------------------------------------


def test_empty_split_is_refused_before_the_first_trial(tmp_path, capsys):
    config, run = RT.searched_run_dir(tmp_path, {})
    (run / "split.json").write_text(json.dumps({"train": [], "val": [], "test": []}))
    rc, _, err = run_cli(capsys, "search", config, "--resume", "--run-dir", run)
    assert rc == 1 and f"split file {run / 'split.json'} has no 'train' cases" in error_line(err)
    assert not (run / "trials.sqlite").exists() or len(TrialStore(run / "trials.sqlite")) == 0


def test_split_with_a_case_in_two_parts_is_refused(tmp_path, capsys):
    config, run = RT.searched_run_dir(tmp_path, {})
    split = json.loads((run / "split.json").read_text())
    split["test"].append(split["train"][0])
    (run / "split.json").write_text(json.dumps(split))
    rc, _, err = run_cli(capsys, "search", config, "--resume", "--run-dir", run)
    assert rc == 1 and f"lists case '{split['train'][0]}' in both 'train' and 'test'" in error_line(err)


def test_a_session_whose_new_trials_all_failed_is_an_error(tmp_path):
    fk.run_fake(str(tmp_path / "r"), budget=3)
    cfg = config_from_dict(fk.TINY_CONFIG)
    strategy = fk.TinyRandomStrategy(SearchSpace.from_config(cfg.space), seed=5)
    with pytest.raises(SearchError, match=r"all 2 trial\(s\) this session trained .* failed \(3 done trial\(s\) of earlier"):
        run_search(cfg, tmp_path / "r", resume=True, strategy=strategy, budget=5, trial_fn=fk.failing_trial, progress=False)


# 8. a YAML alias bomb ------------------------------------------------------------------------------


def test_yaml_alias_bomb_is_refused_without_expanding_it(tmp_path, capsys):
    # 9 levels of 9 aliases under a string key: 9**9 strings once expanded
    anchors = ['&a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    anchors += [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    config = tmp_path / "bomb.yaml"
    config.write_text(f"name: [{', '.join(anchors)}]\n")
    t0 = time.perf_counter()
    rc, out, err = run_cli(capsys, "run", config, "--run-dir", tmp_path / "run")
    assert time.perf_counter() - t0 < 10
    assert rc == 1 and "aliases (*name) expand it to more than 100,000 values" in error_line(err) and len(err) < 500


def test_values_quoted_in_config_errors_are_cut(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"name": [[list(range(200)) for _ in range(20)] for _ in range(3)]}))
    rc, _, err = run_cli(capsys, "run", config, "--run-dir", tmp_path / "run")
    assert rc == 1 and "key 'name'" in error_line(err) and len(err) < 400


def test_oversized_config_is_refused(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("# " + "x" * 1_100_000 + "\nname: a\n")
    rc, _, err = run_cli(capsys, "run", config)
    assert rc == 1 and "a config is at most 1,000,000" in error_line(err)


# a dataset re-prepared under a search (issue 30's probes) --------------------------------------------


def test_a_dataset_changed_under_a_run_is_refused_by_every_stage_that_loads_it(tmp_path, capsys):
    """The resumed search (CLI) and the retrain's data chain (load_data with the run's files)."""
    import shutil

    from data_prep import synthetic
    from medseg_nas.data import load_data
    from medseg_nas.errors import DataError
    from medseg_nas.rundir import RunDir

    config, run = RT.searched_run_dir(tmp_path, {})
    plan_before = (run / "plan.json").read_text()
    shutil.rmtree(tmp_path / "dataset")
    synthetic.generate(tmp_path / "dataset", cases=5, seed=1)  # same case names, other phantoms
    rc, _, err = run_cli(capsys, "search", config, "--resume", "--run-dir", run)
    assert rc == 1 and f"the dataset in {tmp_path / 'dataset'} changed since {run / 'fingerprint.json'}" in error_line(err)
    cfg = RunDir(run).config()
    with pytest.raises(DataError, match="changed since"):
        load_data(cfg.data.root, cfg.data, files=RunDir(run).data_files(), build=False)
    assert (run / "plan.json").read_text() == plan_before  # nothing in the run directory was rewritten


def test_promise12_repair_is_stamped_so_the_prepared_dataset_is_reused(tmp_path):
    """Every converter applies one non-finite policy and stamps it: a config asking for the
    repair finds its own dataset again (without the stamp it would be refused as foreign)."""
    import SimpleITK as sitk

    from data_prep import prepare_from_config
    from data_prep.synthetic import write_promise12_fixture
    from medseg_nas.config import PrepareConfig

    src = write_promise12_fixture(tmp_path / "train", n_train=2, n_test=0)
    case = src / "Case00.mhd"
    img = sitk.ReadImage(str(case))
    arr = sitk.GetArrayFromImage(img).astype(np.float32)
    arr.flat[:4] = np.nan
    bad = sitk.GetImageFromArray(arr)
    bad.CopyInformation(img)
    sitk.WriteImage(bad, str(case))
    cfg = PrepareConfig(source="promise12", src=str(src), nonfinite="zero")
    dst = prepare_from_config(cfg, tmp_path / "out")
    stamp = json.loads((dst / "dataset.json").read_text())["medseg_nas_prepare"]
    assert stamp["nonfinite"] == "zero" and stamp["nonfinite_repaired"] == 4
    assert np.isfinite(np.asarray(nib.load(str(dst / "imagesTr" / "Case00.nii.gz")).dataobj)).all()
    assert prepare_from_config(cfg, dst) == dst  # reused, not refused as another dataset
