"""medseg_nas.data on real layouts: datalists, fingerprints, plans, MONAI pipelines, caching.

Uses synthetic phantoms, converted ACDC / PROMISE12 fixtures (thick slices), a few real
Task04_Hippocampus cases read in place, and generated MNI152 tissue cases.
"""

import json
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from data_prep import acdc, mni152, promise12, synthetic
from medseg_nas.config import DataConfig
from medseg_nas.data import (
    DataPlan,
    build_datasets,
    clear_cache,
    compute_fingerprint,
    inference_transforms,
    load_datalist,
    load_dataset_json,
    make_plan,
    make_split,
    preprocess_transforms,
)
from medseg_nas.errors import DataError
from medseg_nas.space.plan import MAX_LEVELS



@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("data")
    out = {}
    synthetic.generate(base / "syn", cases=6, seed=0)
    out["syn"] = base / "syn"
    synthetic.write_acdc_fixture(base / "acdc_raw", patients=3, seed=1)
    acdc.convert(base / "acdc_raw", base / "acdc")
    out["acdc"] = base / "acdc"
    synthetic.write_promise12_fixture(base / "p12_raw", n_train=4, n_test=0, seed=2)
    promise12.convert(base / "p12_raw", base / "p12")
    out["p12"] = base / "p12"
    # thick slices stored on a voxel axis that RAS puts first (sagittal-like stack)
    sag = base / "sag"
    synthetic.write_msd(sag, cases=4, seed=3)
    for sub in ("imagesTr", "labelsTr"):
        for p in (sag / sub).glob("*.nii.gz"):
            img = nib.load(str(p))
            aff = np.zeros((4, 4))
            aff[3, 3] = 1
            aff[1, 0], aff[2, 1], aff[0, 2] = 1.25, 1.25, 4.0  # voxel i→A, j→S, k→R
            nib.save(nib.Nifti1Image(np.asarray(img.dataobj), aff), str(p))
    out["sag"] = sag
    return out


@pytest.fixture(scope="module")
def mni_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mni") / "mni152_tissue"
    mni152.generate(root, cases=4, seed=0)
    return root


def _pipeline(root, cfg=None, datalist=None):
    cfg = cfg or DataConfig()
    dl = datalist or load_datalist(root)
    split = make_split(dl, seed=0, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction)
    fp = compute_fingerprint(root, dl)
    plan = make_plan(fp, cfg)
    return dl, split, fp, plan


# ------------------------------------------------------------------ datalist


def test_load_datalist_ignores_appledouble_and_keeps_groups(roots, tmp_path):
    dl = load_datalist(roots["acdc"])
    assert [d["id"] for d in dl][:2] == ["patient001_ED", "patient001_ES"]
    assert dl[0]["group"] == "patient001" and Path(dl[0]["image"]).is_absolute()
    # an MSD dataset.json that lists a ._ file next to real volumes
    root = synthetic.write_msd_fixture(tmp_path / "Task", cases=2)
    meta = json.loads((root / "dataset.json").read_text())
    meta["training"].append({"image": "./imagesTr/._phantom_000.nii.gz", "label": "./labelsTr/._phantom_000.nii.gz"})
    (root / "dataset.json").write_text(json.dumps(meta))
    assert [d["id"] for d in load_datalist(root)] == ["phantom_000", "phantom_001"]


def test_load_datalist_errors(tmp_path, roots):
    with pytest.raises(DataError, match="does not exist"):
        load_datalist(tmp_path / "nope")
    root = synthetic.write_msd_fixture(tmp_path / "T", cases=2, appledouble=False)
    (root / "labelsTr" / "phantom_001.nii.gz").unlink()
    with pytest.raises(DataError, match="phantom_001.nii.gz.*does not exist"):
        load_datalist(root)


def test_dataset_json_label_styles(tmp_path):
    root = synthetic.write_msd_fixture(tmp_path / "T", cases=1, appledouble=False)
    assert load_dataset_json(root)["labels"] == {0: "background", 1: "crescent", 2: "wall", 3: "cavity"}
    meta = json.loads((root / "dataset.json").read_text())
    meta["labels"] = {"background": 0, "crescent": 1, "wall": 2, "cavity": 3}  # nnU-Net v2 style
    (root / "dataset.json").write_text(json.dumps(meta))
    assert load_dataset_json(root)["labels"][3] == "cavity"


# ------------------------------------------------------------------ fingerprint + plan


def test_fingerprint_deterministic_and_cached(roots, tmp_path):
    dl = load_datalist(roots["syn"])
    a = compute_fingerprint(roots["syn"], dl)
    b = compute_fingerprint(roots["syn"], dl)
    assert a.to_dict() == b.to_dict()
    assert a.median_spacing == [1.25, 1.25, 4.0] and a.thick_axis == 2 and a.n_classes == 4
    assert a.anisotropy_per_axis == [1.0, 1.0, 3.2] and a.median_shape == [40, 40, 12]
    cache = tmp_path / "fingerprint.json"
    compute_fingerprint(roots["syn"], dl, cache_path=cache)
    d = json.loads(cache.read_text())
    d["intensity"][0]["mean"] = -123.0  # a cache hit returns the file's content
    cache.write_text(json.dumps(d))
    assert compute_fingerprint(roots["syn"], dl, cache_path=cache).intensity[0]["mean"] == -123.0
    sub = compute_fingerprint(roots["syn"], dl[:3], cache_path=cache)  # another datalist: recomputed
    assert sub.n_cases == 3 and sub.intensity[0]["mean"] != -123.0


def test_fingerprint_rejects_undeclared_labels(tmp_path):
    root = synthetic.write_msd_fixture(tmp_path / "T", cases=2, appledouble=False)
    p = root / "labelsTr" / "phantom_001.nii.gz"
    img = nib.load(str(p))
    data = np.asarray(img.dataobj).copy()
    data[1, 1, 1] = 9
    nib.save(nib.Nifti1Image(data, img.affine), str(p))
    with pytest.raises(DataError, match=r"phantom_001.nii.gz.*\[9\]"):
        compute_fingerprint(root, load_datalist(root))


@pytest.mark.parametrize("name", ["acdc", "p12", "sag"])
def test_thick_slice_axis_is_last(roots, name):
    dl, split, fp, plan = _pipeline(roots[name])
    assert plan.target_spacing[2] == max(plan.target_spacing) and plan.target_spacing[2] >= 2 * plan.target_spacing[0]
    if name == "sag":
        assert fp.thick_axis == 0 and plan.axcodes == "ASR"
    else:
        assert plan.axcodes == "RAS"
    # the thick axis is not pooled at the first level (it is coarser than in-plane)
    assert plan.network_plan.strides[0][2] == 1 and plan.network_plan.strides[0][:2] == (2, 2)
    out = preprocess_transforms(plan)({"image": dl[0]["image"], "label": dl[0]["label"]})
    spacing = np.linalg.norm(np.asarray(out["image"].affine)[:3, :3], axis=0)
    assert np.argmax(spacing) == 2 and out["image"].shape[-1] < out["image"].shape[1]


def test_plan_patch_and_overrides(roots):
    for name in ("syn", "acdc", "p12", "sag"):
        _, _, fp, plan = _pipeline(roots[name])
        div = plan.network_plan.divisor(MAX_LEVELS)
        assert all(p % d == 0 for p, d in zip(plan.patch_size, div)), (name, plan.patch_size, div)
        assert np.prod(plan.patch_size) <= DataConfig().max_patch_voxels
    _, _, fp, plan = _pipeline(roots["syn"], DataConfig(target_spacing=[2.0, 2.0, 4.0], patch_size=[24, 24, 8]))
    assert plan.target_spacing == [2.0, 2.0, 4.0] and plan.patch_size == [24, 24, 8]
    assert all(p % d == 0 for p, d in zip(plan.patch_size, plan.network_plan.divisor(MAX_LEVELS)))
    again = DataPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again == plan


# ------------------------------------------------------------------ datasets


def _check_train_item(item, plan):
    assert tuple(item["image"].shape) == (plan.in_channels, *plan.patch_size)
    assert tuple(item["label"].shape) == (1, *plan.patch_size)
    vals = set(torch.unique(item["label"]).tolist())
    assert vals <= set(range(plan.n_classes))
    assert torch.isfinite(item["image"]).all()


@pytest.mark.parametrize("augment", ["none", "light", "full"])
def test_train_patches_val_volumes(roots, augment):
    cfg = DataConfig(augment=augment, val_fraction=0.2, test_fraction=0.2)
    dl, split, fp, plan = _pipeline(roots["acdc"], cfg)
    bundle = build_datasets(dl, split, plan, cfg)
    bundle.reseed(0)
    for i in range(len(bundle.train)):
        _check_train_item(bundle.train[i], plan)
    v = bundle.val[0]
    assert v["image"].shape[0] == 1 and v["label"].shape[1:] == v["image"].shape[1:]
    assert len(bundle.val) == len(split.val) and len(bundle.test) == len(split.test)
    batch = next(iter(bundle.train_loader(batch_size=2, num_samples=4, seed=0)))
    assert tuple(batch["image"].shape) == (2, 1, *plan.patch_size)


def test_reseed_reproducible_and_bundle_cached(roots):
    cfg = DataConfig()
    dl, split, fp, plan = _pipeline(roots["syn"], cfg)
    clear_cache()
    bundle = build_datasets(dl, split, plan, cfg)
    t0 = time.perf_counter()
    again = build_datasets(dl, split, plan, cfg)
    assert again is bundle and time.perf_counter() - t0 < 0.5  # second trial: nothing re-read
    bundle.reseed(11)
    a = [bundle.train[i % len(bundle.train)]["image"].clone() for i in range(4)]
    bundle.reseed(11)
    b = [bundle.train[i % len(bundle.train)]["image"] for i in range(4)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    bundle.reseed(12)
    c = [bundle.train[i % len(bundle.train)]["image"] for i in range(4)]
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


def test_persistent_cache_dir(roots, tmp_path):
    cfg = DataConfig(augment="none")
    dl, split, fp, plan = _pipeline(roots["p12"], cfg)
    bundle = build_datasets(dl, split, plan, cfg, cache_dir=tmp_path / "cache")
    _check_train_item(bundle.train[0], plan)
    assert any((tmp_path / "cache").rglob("*.pt"))


def test_inference_transforms_invert_to_original_grid(roots):
    from monai.transforms import Invertd

    dl, split, fp, plan = _pipeline(roots["acdc"], DataConfig(target_spacing=[1.0, 1.0, 5.0]))
    inf = inference_transforms(plan)
    d = inf({"image": dl[0]["image"]})
    with_label = preprocess_transforms(plan)({"image": dl[0]["image"], "label": dl[0]["label"]})
    d["pred"] = with_label["label"].clone()
    d["pred"].applied_operations = d["image"].applied_operations
    out = Invertd(keys="pred", transform=inf, orig_keys="image", nearest_interp=True)(d)
    original = np.asarray(nib.load(dl[0]["label"]).dataobj)
    assert out["pred"].shape[1:] == original.shape
    assert (np.rint(out["pred"][0].numpy()) == original).mean() > 0.99


def test_real_hippocampus_in_place(hippocampus_root):
    """Six real cases (uint8 and float32 images, a float32 label) read where they are."""
    dl = load_datalist(hippocampus_root)[:6]
    assert {"hippocampus_001", "hippocampus_003"} <= {d["id"] for d in dl}
    cfg = DataConfig(augment="full")
    _, split, fp, plan = _pipeline(hippocampus_root, cfg, datalist=dl)
    assert fp.median_spacing == [1.0, 1.0, 1.0] and fp.n_classes == 3 and fp.modality == {0: "MRI"}
    assert set(fp.class_fractions) == {0, 1, 2}
    bundle = build_datasets(dl, split, plan, cfg)
    bundle.reseed(0)
    for i in range(len(bundle.train)):
        _check_train_item(bundle.train[i], plan)
    v = bundle.val[0]
    assert set(torch.unique(v["label"]).tolist()) == {0.0, 1.0, 2.0}
    assert abs(float(v["image"].mean())) < 1e-3  # MRI: per-image z-score


def test_mni152_quickstart_settings(mni_root):
    cfg = DataConfig(target_spacing=[3.0, 3.0, 3.0], patch_size=[48, 48, 48], augment="light",
                     val_fraction=0.25, test_fraction=0.25)
    dl, split, fp, plan = _pipeline(mni_root, cfg)
    assert fp.labels == {0: "background", 1: "grey matter", 2: "white matter"}
    assert all(1.8 < s < 2.2 for s in fp.median_spacing)
    assert plan.patch_size == [48, 48, 48] and plan.network_plan.divisor(3) == (8, 8, 8)
    bundle = build_datasets(dl, split, plan, cfg)
    batch = next(iter(bundle.train_loader(batch_size=2, num_samples=2, seed=0)))
    assert tuple(batch["image"].shape) == (2, 1, 48, 48, 48)
    assert set(torch.unique(batch["label"]).tolist()) == {0.0, 1.0, 2.0}
    v = bundle.val[0]
    spacing = np.linalg.norm(np.asarray(v["image"].affine)[:3, :3], axis=0)
    np.testing.assert_allclose(spacing, 3.0, rtol=1e-4)


def test_multichannel_msd(tmp_path):
    """MSD tasks with several modalities (e.g. Task05 Prostate: T2 + ADC) stored as 4D NIfTI."""
    from data_prep import msd

    root = tmp_path / "raw"
    synthetic.write_msd(root, cases=4, seed=0)
    for p in (root / "imagesTr").glob("*.nii.gz"):
        img = nib.load(str(p))
        a = np.asarray(img.dataobj)
        nib.save(nib.Nifti1Image(np.stack([a, a * 0.5 + 3], -1), img.affine), str(p))
    meta = json.loads((root / "dataset.json").read_text())
    meta["modality"] = {"0": "T2", "1": "ADC"}
    (root / "dataset.json").write_text(json.dumps(meta))
    msd.convert(root, tmp_path / "clean")
    cfg = DataConfig(augment="full")
    dl, split, fp, plan = _pipeline(tmp_path / "clean", cfg)
    assert fp.in_channels == plan.in_channels == 2 and len(plan.normalization) == 2
    bundle = build_datasets(dl, split, plan, cfg)
    _check_train_item(bundle.train[0], plan)
    assert bundle.val[0]["image"].shape[0] == 2


def test_ct_normalisation_uses_dataset_statistics(tmp_path):
    root = tmp_path / "ct"
    synthetic.write_msd(root, cases=3, seed=0)
    meta = json.loads((root / "dataset.json").read_text())
    meta["modality"] = {"0": "CT"}
    (root / "dataset.json").write_text(json.dumps(meta))
    dl, split, fp, plan = _pipeline(root)
    norm = plan.normalization[0]
    assert norm["scheme"] == "ct" and norm["clip"] == [fp.intensity[0]["p00_5"], fp.intensity[0]["p99_5"]]
    out = preprocess_transforms(plan)({"image": dl[0]["image"], "label": dl[0]["label"]})
    img = out["image"]
    hi = (norm["clip"][1] - norm["mean"]) / norm["std"]
    assert float(img.max()) <= hi + 1e-4


# ------------------------------------------------------------------ the chain in a run directory


def test_load_data_persists_and_reuses_the_run_files(roots, tmp_path):
    """split.json is made once and reused, fingerprint.json cached, plan.json rewritten; a split
    of another dataset is one DataError naming the file."""
    from medseg_nas.data import load_data
    from medseg_nas.rundir import RunDir

    cfg = DataConfig(root=str(roots["syn"]), patch_size=[32, 32, 8])
    run = RunDir(tmp_path)
    first = load_data(cfg.root, cfg, files=run.data_files(), build=False)
    assert first.bundle is None and all(p.is_file() for p in (run.split_json, run.fingerprint_json, run.plan_json))
    assert DataPlan.from_dict(json.loads(run.plan_json.read_text())) == first.plan
    assert (first.split.train, first.split.val, first.split.test) == (lambda s: (s.train, s.val, s.test))(
        make_split(first.datalist, seed=cfg.split_seed, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction))
    saved = json.loads(run.split_json.read_text())
    saved["train"], saved["val"] = saved["val"], saved["train"]  # a split the config would not make: kept
    run.split_json.write_text(json.dumps(saved))
    again = load_data(cfg.root, cfg, files=run.data_files(), build=False)
    assert again.split.train == saved["train"] and again.plan == first.plan
    saved["test"] = ["ghost_001"]
    run.split_json.write_text(json.dumps(saved))
    with pytest.raises(DataError, match=r"split\.json lists case 'ghost_001' \(test\)"):
        load_data(cfg.root, cfg, files=run.data_files(), build=False)
