"""Bad datasets: downloads, converted folders, image volumes, splits."""

from __future__ import annotations

from pathlib import Path

from medseg_nas.testing.reliability.builders import (  # noqa: F401 — not every module uses every helper
    DOLLAR_EXPRESSION, held_lock, msd_download, prepare_cmd, run_cmd, searched_run_dir, synthetic_dataset,
    tiny_checkpoint, write_config, write_nifti)
from medseg_nas.testing.reliability.harness import case


# data

@case("data", "`data.root` left empty")
def data_root_empty(d: Path) -> list[str]:
    return run_cmd(d, {"data": {"root": ""}})


@case("data", "dataset folder that does not exist")
def data_root_missing(d: Path) -> list[str]:
    return run_cmd(d, {"data": {"root": str(d / "no_such_dataset")}})


@case("data", "`search` on a folder without dataset.json")
def search_no_dataset_json(d: Path) -> list[str]:
    (d / "dataset").mkdir()
    return ["search", str(write_config(d, {})), "--run-dir", str(d / "run")]


@case("data", "`prepare msd` from a folder that does not exist")
def prepare_missing_src(d: Path) -> list[str]:
    return ["prepare", "msd", "--src", str(d / "Task99_Missing"), "--dst", str(d / "out")]


@case("data", "`prepare msd` with a dataset.json that is not JSON")
def prepare_bad_dataset_json(d: Path) -> list[str]:
    src = d / "Task99_Bad"
    (src / "imagesTr").mkdir(parents=True)
    (src / "dataset.json").write_text("{not json")
    return ["prepare", "msd", "--src", str(src), "--dst", str(d / "out")]


@case("data", "`prepare msd` with a dataset.json entry reaching outside --src (`../`)")
def prepare_escaping_entry(d: Path) -> list[str]:
    (d / "elsewhere").mkdir()
    write_nifti(d / "elsewhere" / "stolen.nii.gz", (16, 16, 16))
    return prepare_cmd(msd_download(d, lambda m: m["training"].append(
        {"image": "./imagesTr/../../elsewhere/stolen.nii.gz", "label": "labelsTr/phantom_001.nii.gz"})))


@case("data", "`prepare msd` with an absolute path in dataset.json")
def prepare_absolute_entry(d: Path) -> list[str]:
    (d / "elsewhere").mkdir()
    stolen = write_nifti(d / "elsewhere" / "stolen.nii.gz", (16, 16, 16))
    return prepare_cmd(msd_download(d, lambda m: m["test"].append(str(stolen))))


@case("data", "`prepare msd` with a dataset.json image that is not a path (`\"image\": 5`)")
def prepare_non_string_entry(d: Path) -> list[str]:
    return prepare_cmd(msd_download(d, lambda m: m["training"].append({"image": 5, "label": "./labelsTr/phantom_000.nii.gz"})))


@case("data", "`prepare msd` with two dataset.json entries writing the same case")
def prepare_duplicate_case(d: Path) -> list[str]:
    return prepare_cmd(msd_download(d, lambda m: m["training"].append(dict(m["training"][0]))))


@case("data", "`search` into a run directory whose split.json names a case the dataset lacks")
def search_stale_split(d: Path) -> list[str]:
    import json

    synthetic_dataset(d)
    (d / "run").mkdir()
    ids = [f"phantom_{i:03d}" for i in range(5)]
    (d / "run" / "split.json").write_text(json.dumps({"train": ["ghost_007", *ids[:3]], "val": [ids[3]], "test": [ids[4]]}))
    return ["search", str(write_config(d, {})), "--run-dir", str(d / "run")]


def _poisoned_msd(d: Path, change) -> list[str]:
    """`prepare msd` of a downloaded task whose first training image `change(img, data)` rewrites
    (returning the nibabel image to save)."""
    import nibabel as nib
    import numpy as np

    src = msd_download(d, lambda m: None)
    path = src / "imagesTr" / "phantom_000.nii.gz"
    img = nib.load(str(path))
    nib.save(change(img, np.asarray(img.dataobj, dtype=np.float32)), str(path))
    return prepare_cmd(src)


def _float_image(data, affine, header=None):
    import nibabel as nib
    import numpy as np

    out = nib.Nifti1Image(data, affine)
    out.header.set_data_dtype(data.dtype if data.dtype.fields else np.dtype(data.dtype))
    return out


def _with_nan(img, data):
    data = data.copy()
    data.flat[:5] = float("nan")  # .flat: nibabel's arrays are Fortran-ordered, reshape(-1) would copy
    data.flat[5] = float("inf")
    return _float_image(data, img.affine)


@case("data", "`prepare msd` with NaN and Inf voxels in an image")
def prepare_nan_voxels(d: Path) -> list[str]:
    return _poisoned_msd(d, _with_nan)


@case("data", "`prepare msd` with a complex-valued image")
def prepare_complex_image(d: Path) -> list[str]:
    import numpy as np

    return _poisoned_msd(d, lambda img, x: _float_image((x + 1j * x).astype(np.complex64), img.affine))


@case("data", "`prepare msd` with an RGB image")
def prepare_rgb_image(d: Path) -> list[str]:
    import numpy as np

    def rgb(img, x):
        v = np.zeros(x.shape, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
        return _float_image(v, img.affine)

    return _poisoned_msd(d, rgb)


@case("data", "`prepare msd` with a 5D image")
def prepare_5d_image(d: Path) -> list[str]:
    return _poisoned_msd(d, lambda img, x: _float_image(x[..., None, None], img.affine))


@case("data", "`prepare msd` with a zero voxel spacing (pixdim) in the header")
def prepare_zero_spacing(d: Path) -> list[str]:
    import gzip
    import struct

    argv = prepare_cmd(msd_download(d, lambda m: None))
    path = d / "Task99_Phantom" / "imagesTr" / "phantom_000.nii.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[88:92] = struct.pack("<f", 0.0)  # pixdim[3], as a broken DICOM converter writes a slice thickness
    raw[252:256] = struct.pack("<hh", 1, 0)  # qform_code 1, sform_code 0: the grid comes from pixdim
    path.write_bytes(gzip.compress(bytes(raw)))
    return argv


@case("data", "`prepare msd` with NaN in the affine")
def prepare_nan_affine(d: Path) -> list[str]:
    import numpy as np

    def nan_affine(img, x):
        import nibabel as nib

        hdr = _float_image(x, img.affine).header.copy()
        hdr["srow_x"][0] = np.nan  # the sform as written by a broken converter
        hdr["sform_code"], hdr["qform_code"] = 1, 0
        return nib.Nifti1Image(x, None, hdr)

    return _poisoned_msd(d, nan_affine)


@case("data", "`search` on an MSD folder (never prepared) with an infinite voxel")
def search_inf_voxel(d: Path) -> list[str]:
    import nibabel as nib
    import numpy as np

    root = synthetic_dataset(d)
    path = root / "imagesTr" / "phantom_002.nii.gz"
    img = nib.load(str(path))
    x = np.asarray(img.dataobj, dtype=np.float32)
    x.flat[7] = -np.inf
    nib.save(_float_image(x, img.affine), str(path))
    return ["search", str(write_config(d, {})), "--run-dir", str(d / "run")]


@case("data", "`search` with a patch far beyond the data (`data.patch_size: [512, 512, 512]` on 16-voxel cases)")
def search_huge_patch(d: Path) -> list[str]:
    synthetic_dataset(d)
    return ["search", str(write_config(d, {"data": {"patch_size": [512, 512, 512]}})), "--run-dir", str(d / "run")]
