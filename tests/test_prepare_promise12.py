"""`prepare promise12`: MetaImage CaseXX(.mhd/.raw) + _segmentation → NIfTI with the same geometry."""

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from data_prep import promise12
from data_prep.synthetic import write_promise12_fixture
from medseg_nas.errors import DataError


@pytest.fixture
def raw(tmp_path):
    return write_promise12_fixture(tmp_path / "promise", n_train=2, n_test=1, seed=5)


def test_converts_with_geometry(raw, tmp_path):
    meta = promise12.convert(raw, tmp_path / "out")
    out = tmp_path / "out"
    assert meta["numTraining"] == 2 and meta["test"] == ["./imagesTs/Case02.nii.gz"]
    assert meta["labels"] == {"0": "background", "1": "prostate"}
    src = sitk.ReadImage(str(raw / "Case00.mhd"))
    dst = sitk.ReadImage(str(out / "imagesTr" / "Case00.nii.gz"))
    np.testing.assert_allclose(dst.GetSpacing(), src.GetSpacing(), rtol=1e-5)
    np.testing.assert_allclose(dst.GetOrigin(), src.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(dst.GetDirection(), src.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(dst), sitk.GetArrayFromImage(src))
    lab = nib.load(str(out / "labelsTr" / "Case00.nii.gz"))
    assert lab.get_data_dtype() == np.uint8 and set(np.unique(np.asarray(lab.dataobj))) == {0, 1}
    np.testing.assert_allclose(lab.header.get_zooms(), (0.625, 0.625, 3.6), rtol=1e-5)
    # ITK's LPS world becomes a NIfTI (RAS) affine with the first two axes flipped
    assert nib.aff2axcodes(lab.affine) == ("L", "P", "S")


def test_segmentation_geometry_mismatch(raw, tmp_path):
    seg = sitk.ReadImage(str(raw / "Case01_segmentation.mhd"))
    seg.SetSpacing((0.625, 0.625, 3.0))
    sitk.WriteImage(seg, str(raw / "Case01_segmentation.mhd"), False)
    with pytest.raises(DataError, match="Case01_segmentation.mhd.*does not match"):
        promise12.convert(raw, tmp_path / "out")


def test_segmentation_label_values(raw, tmp_path):
    seg = sitk.ReadImage(str(raw / "Case00_segmentation.mhd"))
    arr = sitk.GetArrayFromImage(seg)
    arr[arr == 1] = 2
    bad = sitk.GetImageFromArray(arr)
    bad.CopyInformation(seg)
    sitk.WriteImage(bad, str(raw / "Case00_segmentation.mhd"), False)
    with pytest.raises(DataError, match=r"Case00_segmentation.mhd.*\[2\]"):
        promise12.convert(raw, tmp_path / "out")


def test_truncated_raw(raw, tmp_path):
    r = raw / "Case01.raw"
    r.write_bytes(r.read_bytes()[:1000])
    with pytest.raises(DataError, match="Case01.mhd.*(unreadable|truncated)"):
        promise12.convert(raw, tmp_path / "out")


def test_orphan_segmentation(raw, tmp_path):
    (raw / "Case01.mhd").unlink()
    with pytest.raises(DataError, match="Case01_segmentation.mhd has no image"):
        promise12.convert(raw, tmp_path / "out")


def test_empty_and_dst_inside_src(raw, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        promise12.convert(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(DataError, match="inside --src"):
        promise12.convert(raw, raw / "out")


def test_appledouble_files_ignored(raw, tmp_path):
    junk = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        "
    for p in list(raw.iterdir()):
        (raw / f"._{p.name}").write_bytes(junk)
    meta = promise12.convert(raw, tmp_path / "out")
    assert meta["numTraining"] == 2 and meta["test"] == ["./imagesTs/Case02.nii.gz"]
    assert not any(p.name.startswith("._") for p in (tmp_path / "out").rglob("*"))
