"""`prepare msd`: a downloaded MSD task (with macOS ._* files) → clean MSD copy; every bad input
gives one DataError naming the file."""

import json

import nibabel as nib
import numpy as np
import pytest

from data_prep import msd
from data_prep.synthetic import write_msd_fixture
from medseg_nas.errors import DataError



@pytest.fixture
def raw(tmp_path):
    return write_msd_fixture(tmp_path / "Task99_Phantom", cases=3, seed=1)


def test_converts_and_ignores_appledouble(raw, tmp_path):
    meta = msd.convert(raw, tmp_path / "out")
    out = tmp_path / "out"
    assert meta["numTraining"] == 3 and meta["numTest"] == 1
    assert not any(p.name.startswith("._") for p in out.rglob("*"))
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == [f"phantom_00{i}.nii.gz" for i in range(3)]
    saved = json.loads((out / "dataset.json").read_text())
    assert saved["labels"]["0"] == "background" and saved["training"][0]["image"].startswith("./imagesTr/")
    assert (out / "imagesTs" / "phantom_003.nii.gz").is_file()
    assert not list(tmp_path.glob(".out.tmp-*"))  # staging folder moved into place


def test_cases_limit(raw, tmp_path):
    assert msd.convert(raw, tmp_path / "out", cases=2)["numTraining"] == 2


def test_real_hippocampus_handful(hippocampus_root, tmp_path):
    """Real cases read in place: 001 (uint8 image), 003 (float32 image and float32 label)."""
    meta = msd.convert(hippocampus_root, tmp_path / "hip", cases=5)
    assert meta["numTraining"] == 5 and meta["labels"] == {"0": "background", "1": "Anterior", "2": "Posterior"}
    lab = nib.load(str(tmp_path / "hip" / "labelsTr" / "hippocampus_003.nii.gz"))
    assert lab.get_data_dtype() == np.uint8  # float32 label rewritten as integers
    src = np.asarray(nib.load(str(hippocampus_root / "labelsTr" / "hippocampus_003.nii.gz")).dataobj)
    np.testing.assert_array_equal(np.asarray(lab.dataobj), np.rint(src))
    # images are copied byte for byte
    assert (tmp_path / "hip" / "imagesTr" / "hippocampus_001.nii.gz").read_bytes() == \
        (hippocampus_root / "imagesTr" / "hippocampus_001.nii.gz").read_bytes()


def _resave(path, data, affine):
    nib.save(nib.Nifti1Image(data, affine), str(path))


def test_shape_mismatch(raw, tmp_path):
    lab = raw / "labelsTr" / "phantom_001.nii.gz"
    img = nib.load(str(lab))
    _resave(lab, np.zeros((10, 10, 5), np.uint8), img.affine)
    with pytest.raises(DataError, match="phantom_001.nii.gz.*shape"):
        msd.convert(raw, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_affine_mismatch(raw, tmp_path):
    lab = raw / "labelsTr" / "phantom_000.nii.gz"
    img = nib.load(str(lab))
    aff = img.affine.copy()
    aff[0, 3] += 5.0
    _resave(lab, np.asarray(img.dataobj), aff)
    with pytest.raises(DataError, match="phantom_000.nii.gz.*affine"):
        msd.convert(raw, tmp_path / "out")


def test_label_outside_declared(raw, tmp_path):
    lab = raw / "labelsTr" / "phantom_002.nii.gz"
    img = nib.load(str(lab))
    data = np.asarray(img.dataobj).copy()
    data[0, 0, 0] = 7
    _resave(lab, data, img.affine)
    with pytest.raises(DataError, match=r"phantom_002.nii.gz.*\[7\]"):
        msd.convert(raw, tmp_path / "out")


def test_non_integer_float_label(raw, tmp_path):
    lab = raw / "labelsTr" / "phantom_002.nii.gz"
    img = nib.load(str(lab))
    data = np.asarray(img.dataobj).astype(np.float32)
    data[0, 0, 0] = 0.5
    _resave(lab, data, img.affine)
    with pytest.raises(DataError, match="phantom_002.nii.gz.*non-integer"):
        msd.convert(raw, tmp_path / "out")


def test_truncated_file(raw, tmp_path):
    img = raw / "imagesTr" / "phantom_001.nii.gz"
    img.write_bytes(img.read_bytes()[: len(img.read_bytes()) // 2])
    with pytest.raises(DataError, match="phantom_001.nii.gz.*(unreadable|truncated)"):
        msd.convert(raw, tmp_path / "out")


def test_missing_label_file(raw, tmp_path):
    (raw / "labelsTr" / "phantom_001.nii.gz").unlink()
    with pytest.raises(DataError, match="phantom_001.nii.gz.*does not exist"):
        msd.convert(raw, tmp_path / "out")


def test_empty_source(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        msd.convert(tmp_path / "empty", tmp_path / "out")


def test_bad_dataset_json(raw, tmp_path):
    (raw / "dataset.json").write_text("{not json")
    with pytest.raises(DataError, match="dataset.json.*JSON"):
        msd.convert(raw, tmp_path / "out")


def test_dst_inside_src(raw):
    with pytest.raises(DataError, match="inside --src"):
        msd.convert(raw, raw / "clean")


def test_non_empty_dst_needs_force_and_failure_keeps_old(raw, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(DataError, match="not empty.*--force"):
        msd.convert(raw, out)
    # a failing conversion with --force leaves the old content untouched
    bad = raw / "imagesTr" / "phantom_002.nii.gz"
    good_bytes = bad.read_bytes()
    bad.write_bytes(b"garbage")
    with pytest.raises(DataError, match="phantom_002"):
        msd.convert(raw, out, force=True)
    assert (out / "keep.txt").read_text() == "precious"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    bad.write_bytes(good_bytes)
    msd.convert(raw, out, force=True)
    assert not (out / "keep.txt").exists() and (out / "dataset.json").is_file()


# --- dataset.json entries: each bad entry is refused through the real CLI with one line naming it ---

def _edit(raw, change):
    meta = json.loads((raw / "dataset.json").read_text())
    change(meta)
    (raw / "dataset.json").write_text(json.dumps(meta))


def _copy_pair(raw, folder, name, case="phantom_001"):
    """A valid image/label pair (a copy of `case`) stored under `folder`, named `name`."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(raw / "imagesTr" / f"{case}.nii.gz", folder / f"{name}.nii.gz")
    shutil.copyfile(raw / "labelsTr" / f"{case}.nii.gz", folder / f"{name}_gt.nii.gz")
    return folder / f"{name}.nii.gz", folder / f"{name}_gt.nii.gz"


def _dup_case(raw):
    """A second, valid pair whose image file is also called phantom_000: today it silently replaced case 0."""
    _copy_pair(raw, raw / "extra", "phantom_000")
    _edit(raw, lambda m: m["training"].append({"image": "./extra/phantom_000.nii.gz",
                                               "label": "./extra/phantom_000_gt.nii.gz"}))
    return ["training entry 0", "training entry 3", "'./extra/phantom_000.nii.gz'", "phantom_000", "overwrite"]


def _dup_case_other_suffix(raw):
    """phantom_001.nii and phantom_001.nii.gz are the same case once written as .nii.gz."""
    import shutil

    shutil.copyfile(raw / "imagesTr" / "phantom_001.nii.gz", raw / "imagesTr" / "phantom_001.nii")
    _edit(raw, lambda m: m["training"].append({"image": "imagesTr/phantom_001.nii",
                                               "label": "./labelsTr/phantom_001.nii.gz"}))
    return ["training entry 1", "training entry 3", "phantom_001", "overwrite"]


def _dup_test_case(raw):
    _edit(raw, lambda m: m["test"].append("./imagesTr/phantom_003.nii.gz"))
    import shutil

    shutil.copyfile(raw / "imagesTs" / "phantom_003.nii.gz", raw / "imagesTr" / "phantom_003.nii.gz")
    return ["test entry 0", "test entry 1", "phantom_003", "overwrite"]


def _escaping_relative(raw):
    """A valid pair outside --src reached with ../: today it was read and copied into the dataset."""
    _copy_pair(raw, raw.parent / "elsewhere", "stolen")
    _edit(raw, lambda m: m["training"].append({"image": "./imagesTr/../../elsewhere/stolen.nii.gz",
                                               "label": "labelsTr/phantom_001.nii.gz"}))
    return ["training entry 3", "'./imagesTr/../../elsewhere/stolen.nii.gz'", "'image'", "outside --src"]


def _absolute(raw):
    img, lab = _copy_pair(raw, raw.parent / "elsewhere", "stolen")
    _edit(raw, lambda m: m["training"].insert(1, {"image": "./imagesTr/phantom_001.nii.gz", "label": str(lab)}))
    return ["training entry 1", repr(str(lab)), "'label'", "absolute path"]


def _absolute_test(raw):
    img, _ = _copy_pair(raw, raw.parent / "elsewhere", "stolen")
    _edit(raw, lambda m: m["test"].append(str(img)))
    return ["test entry 1", repr(str(img)), "absolute path"]


def _image_number(raw):
    _edit(raw, lambda m: m["training"].append({"image": 5, "label": "./labelsTr/phantom_000.nii.gz"}))
    return ["training entry 3", "{'image': 5,", "'image' must be a path string, got int 5"]


def _label_list(raw):
    _edit(raw, lambda m: m["training"][2].update(label=["./labelsTr/phantom_002.nii.gz"]))
    return ["training entry 2", "'label' must be a path string, got list"]


def _image_null(raw):
    _edit(raw, lambda m: m["training"][0].update(image=None))
    return ["training entry 0", "{'image': None,", "'image' must be a path string, got NoneType"]


def _test_number(raw):
    _edit(raw, lambda m: m["test"].append(7))
    return ["test entry 1 (7)", "must be a path string, got int 7"]


def _test_dict_without_image(raw):
    _edit(raw, lambda m: m["test"].append({"label": "x.nii.gz"}))
    return ["test entry 1 ({'label': 'x.nii.gz'})", "needs 'image'"]


def _labels_list(raw):
    _edit(raw, lambda m: m.update(labels=["background", "crescent"]))
    return ["'labels' must map integers to names", "['background', 'crescent']"]


@pytest.mark.parametrize("make", [_dup_case, _dup_case_other_suffix, _dup_test_case, _escaping_relative, _absolute,
                                  _absolute_test, _image_number, _label_list, _image_null, _test_number,
                                  _test_dict_without_image, _labels_list])
def test_bad_dataset_json_entry_one_line_via_cli(raw, tmp_path, capsys, make):
    from medseg_nas.cli import main

    expected = make(raw)
    dst = tmp_path / "out"
    rc = main(["prepare", "msd", "--src", str(raw), "--dst", str(dst)])
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert rc == 1 and "Traceback" not in cap.err + cap.out, cap.err
    assert len(lines) == 1 and lines[0].startswith("error:") and "dataset.json" in lines[0], cap.err
    for text in expected:
        assert text in lines[0], (text, lines[0])
    assert not dst.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_paths_inside_src_still_accepted(raw, tmp_path):
    """Entries without ./, with a harmless ../ that stays inside, and in another sub-folder are fine."""
    _copy_pair(raw, raw / "extra", "phantom_009")
    _edit(raw, lambda m: m["training"].extend([
        {"image": "imagesTr/../extra/phantom_009.nii.gz", "label": "extra/phantom_009_gt.nii.gz"},
    ]))
    meta = msd.convert(raw, tmp_path / "out")
    assert meta["numTraining"] == 4 and (tmp_path / "out" / "imagesTr" / "phantom_009.nii.gz").is_file()
