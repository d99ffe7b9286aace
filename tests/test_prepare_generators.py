"""The embedded MNI152 tissue generator and the synthetic phantoms: deterministic, well-formed."""

import json
import time

import nibabel as nib
import numpy as np
import pytest

from data_prep import mni152, synthetic
from medseg_nas.errors import DataError


def _arrays(root):
    out = {}
    for sub in ("imagesTr", "labelsTr"):
        for p in sorted((root / sub).glob("*.nii.gz")):
            img = nib.load(str(p))
            out[f"{sub}/{p.name}"] = (np.asarray(img.dataobj), img.affine)
    return out


def test_synthetic_deterministic(tmp_path):
    synthetic.generate(tmp_path / "a", cases=3, seed=7)
    synthetic.generate(tmp_path / "b", cases=3, seed=7)
    synthetic.generate(tmp_path / "c", cases=3, seed=8)
    a, b, c = _arrays(tmp_path / "a"), _arrays(tmp_path / "b"), _arrays(tmp_path / "c")
    assert a.keys() == b.keys() and len(a) == 6
    for k in a:
        np.testing.assert_array_equal(a[k][0], b[k][0])
        np.testing.assert_array_equal(a[k][1], b[k][1])
    assert any(not np.array_equal(a[k][0], c[k][0]) for k in a)


def test_synthetic_phantom_structure():
    rng = np.random.default_rng(0)
    img, lab = synthetic.phantom(rng)
    assert img.shape == lab.shape == synthetic.DEFAULT_SHAPE and img.dtype == np.float32
    assert set(np.unique(lab)) == {0, 1, 2, 3}
    # the structures touch: the wall borders both the cavity and the crescent
    from scipy import ndimage

    grown = ndimage.binary_dilation(lab == 2)
    assert (grown & (lab == 3)).any() and (grown & (lab == 1)).any()
    aff = synthetic.affine_for(synthetic.DEFAULT_SPACING, lab.shape)
    np.testing.assert_allclose(np.linalg.norm(aff[:3, :3], axis=0), synthetic.DEFAULT_SPACING)


def test_synthetic_rejects_zero_cases(tmp_path):
    with pytest.raises(DataError, match="--cases"):
        synthetic.generate(tmp_path / "x", cases=0)


def test_mni152_sources_in_nilearn():
    d = mni152.source_dir()
    for f in mni152.FILES.values():
        assert (d / f).is_file()


def test_mni152_case_deterministic_and_plausible():
    img, lab, aff = mni152.make_case(seed=0, index=1)
    img2, lab2, aff2 = mni152.make_case(seed=0, index=1)
    np.testing.assert_array_equal(img, img2)
    np.testing.assert_array_equal(lab, lab2)
    np.testing.assert_array_equal(aff, aff2)
    other, olab, _ = mni152.make_case(seed=1, index=1)
    assert other.shape != img.shape or not np.array_equal(other, img)
    assert img.dtype == np.int16 and lab.dtype == np.uint8
    assert set(np.unique(lab)) == {0, 1, 2}
    spacing = np.linalg.norm(aff[:3, :3], axis=0)
    assert np.all((spacing > 1.8) & (spacing < 2.2))
    assert all(55 <= n <= 110 for n in img.shape), img.shape  # cropped to the head at ~2 mm
    frac = [(lab == k).mean() for k in (1, 2)]
    assert 0.15 < frac[0] < 0.45 and 0.08 < frac[1] < 0.35, frac
    # grey matter is darker than white matter in T1, and the noise makes the classes overlap
    gm, wm = img[lab == 1].astype(float), img[lab == 2].astype(float)
    assert gm.mean() < wm.mean()
    assert np.percentile(gm, 95) > np.percentile(wm, 5)


def test_mni152_generate_layout(tmp_path):
    t0 = time.perf_counter()
    meta = mni152.generate(tmp_path / "mni", cases=2, seed=3)
    elapsed = time.perf_counter() - t0
    root = tmp_path / "mni"
    assert meta["numTraining"] == 2 and meta["labels"] == {"0": "background", "1": "grey matter", "2": "white matter"}
    assert "licence" in json.loads((root / "dataset.json").read_text())
    notice = (root / "LICENSE_MNI152.txt").read_text()
    assert "Louis Collins" in notice and "McGill" in notice
    assert "Louis Collins" in (root / "README.md").read_text()
    arrays = _arrays(root)
    img, aff = arrays["imagesTr/mni152_000.nii.gz"]
    lab, laff = arrays["labelsTr/mni152_000.nii.gz"]
    assert img.shape == lab.shape and np.allclose(aff, laff)
    # same seed, same voxels as make_case
    ref, reflab, _ = mni152.make_case(3, 0)
    np.testing.assert_array_equal(img, ref)
    np.testing.assert_array_equal(lab, reflab)
    assert elapsed < 40  # ~1 s per case plus loading the template on a busy 2-core machine
