"""`prepare acdc`: the original ACDC layout (Info.cfg, _frameNN, _gt, 4d cine) → ED/ES cases."""


import nibabel as nib
import numpy as np
import pytest

from data_prep import acdc
from data_prep.synthetic import write_acdc_fixture
from medseg_nas.errors import DataError


@pytest.fixture
def raw(tmp_path):
    return write_acdc_fixture(tmp_path / "training", patients=2, seed=3)


def test_converts_ed_es(raw, tmp_path):
    meta = acdc.convert(raw, tmp_path / "out")
    out = tmp_path / "out"
    ids = sorted(p.name for p in (out / "imagesTr").iterdir())
    assert ids == ["patient001_ED.nii.gz", "patient001_ES.nii.gz", "patient002_ED.nii.gz", "patient002_ES.nii.gz"]
    assert meta["labels"] == {"0": "background", "1": "RV cavity", "2": "myocardium", "3": "LV cavity"}
    assert {e["group"] for e in meta["training"]} == {"patient001", "patient002"}
    # ES frame from Info.cfg, spacing and affine kept, the 4d cine ignored
    es = int((raw / "patient001" / "Info.cfg").read_text().split("ES:")[1].split()[0])
    src = nib.load(str(raw / "patient001" / f"patient001_frame{es:02d}.nii.gz"))
    dst = nib.load(str(out / "imagesTr" / "patient001_ES.nii.gz"))
    np.testing.assert_allclose(dst.affine, src.affine)
    np.testing.assert_allclose(dst.header.get_zooms(), (1.5625, 1.5625, 10.0))
    assert dst.shape == src.shape


def test_testing_folder_and_database_root(tmp_path):
    write_acdc_fixture(tmp_path / "db" / "training", patients=1, seed=0)
    write_acdc_fixture(tmp_path / "db" / "testing", patients=1, seed=1, first_id=101)
    assert acdc.convert(tmp_path / "db" / "testing", tmp_path / "t")["numTraining"] == 2
    meta = acdc.convert(tmp_path / "db", tmp_path / "all")
    assert {e["group"] for e in meta["training"]} == {"patient001", "patient101"}


def test_missing_gt(raw, tmp_path):
    gt = sorted((raw / "patient002").glob("*_gt.nii.gz"))[0]
    gt.unlink()
    with pytest.raises(DataError, match=f"{gt.name}.*missing"):
        acdc.convert(raw, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_info(raw, tmp_path):
    (raw / "patient001" / "Info.cfg").unlink()
    with pytest.raises(DataError, match="patient001/Info.cfg"):
        acdc.convert(raw, tmp_path / "out")


def test_info_without_es(raw, tmp_path):
    (raw / "patient001" / "Info.cfg").write_text("ED: 1\nGroup: NOR\n")
    with pytest.raises(DataError, match="Info.cfg has no 'ES:'"):
        acdc.convert(raw, tmp_path / "out")


def _first_gt(raw):
    return sorted((raw / "patient001").glob("*_gt.nii.gz"))[0]


def test_shape_mismatch(raw, tmp_path):
    gt = _first_gt(raw)
    nib.save(nib.Nifti1Image(np.zeros((48, 48, 7), np.uint8), nib.load(str(gt)).affine), str(gt))
    with pytest.raises(DataError, match=f"{gt.name}.*shape"):
        acdc.convert(raw, tmp_path / "out")


def test_affine_mismatch(raw, tmp_path):
    gt = _first_gt(raw)
    img = nib.load(str(gt))
    aff = img.affine.copy()
    aff[:3, 2] *= 0.5  # 5 mm slices instead of 10
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), aff), str(gt))
    with pytest.raises(DataError, match=f"{gt.name}.*affine"):
        acdc.convert(raw, tmp_path / "out")


def test_label_values(raw, tmp_path):
    gt = _first_gt(raw)
    img = nib.load(str(gt))
    data = np.asarray(img.dataobj).copy()
    data[data == 3] = 4
    nib.save(nib.Nifti1Image(data, img.affine), str(gt))
    with pytest.raises(DataError, match=rf"{gt.name}.*\[4\]"):
        acdc.convert(raw, tmp_path / "out")


def test_truncated(raw, tmp_path):
    f = sorted((raw / "patient002").glob("*_frame01.nii.gz"))[0]
    f.write_bytes(f.read_bytes()[:200])
    with pytest.raises(DataError, match=f"{f.name}.*(unreadable|truncated)"):
        acdc.convert(raw, tmp_path / "out")


def test_empty_and_wrong_source(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        acdc.convert(tmp_path / "empty", tmp_path / "out")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    with pytest.raises(DataError, match="no patientXXX"):
        acdc.convert(tmp_path / "other", tmp_path / "out")


def test_dst_inside_src(raw):
    with pytest.raises(DataError, match="inside --src"):
        acdc.convert(raw, raw / "patient001" / "out")


def test_appledouble_files_ignored(raw, tmp_path):
    junk = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        "
    (raw / "._patient001").write_bytes(junk)
    for p in list((raw / "patient001").iterdir()):
        (raw / "patient001" / f"._{p.name}").write_bytes(junk)
    meta = acdc.convert(raw, tmp_path / "out")
    assert meta["numTraining"] == 4
    assert not any(p.name.startswith("._") for p in (tmp_path / "out").rglob("*"))
