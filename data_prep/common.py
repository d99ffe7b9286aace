"""Shared pieces of the converters: safe output folders, NIfTI reading with clear errors, pair
checks and the MSD `dataset.json` writer.

Every problem with the user's files is raised as one `DataError` naming the file and what is
wrong; the CLI prints it as one line.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from medseg_nas.errors import DataError
from medseg_nas.volume_checks import check_header, usable_voxels

STAMP_KEY = "medseg_nas_prepare"  # provenance written into dataset.json by every converter


def is_hidden(path: str | Path) -> bool:
    """macOS AppleDouble (`._x.nii.gz`) and dot files: never volumes."""
    return Path(path).name.startswith(".")


def check_dst(dst: Path, src: Path | None = None, force: bool = False) -> None:
    """Refuse a destination inside the source, and a non-empty destination without force."""
    dst_r = Path(os.path.abspath(dst))
    if src is not None:
        src_r = Path(os.path.abspath(src))
        real_dst, real_src = Path(os.path.realpath(dst_r)), Path(os.path.realpath(src_r))
        for d, s in ((dst_r, src_r), (real_dst, real_src)):
            if d == s or s in d.parents:
                raise DataError(f"--dst {dst} is inside --src {src}; choose a folder outside the source")
            if d in s.parents:
                raise DataError(f"--src {src} is inside --dst {dst}; --force would delete the source")
    if dst_r.exists():
        if not dst_r.is_dir():
            raise DataError(f"--dst {dst} exists and is not a folder")
        if any(dst_r.iterdir()) and not force:
            raise DataError(f"--dst {dst} is not empty; pass --force to replace it")


@contextlib.contextmanager
def staged_output(dst: str | Path, src: str | Path | None = None, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder next to `dst`; move it into place only if the body succeeds.

    Nothing already in `dst` is touched until the new dataset is complete; on failure the
    temporary folder is removed and `dst` is left exactly as it was.
    """
    dst = Path(dst)
    check_dst(dst, Path(src) if src is not None else None, force)
    parent = Path(os.path.abspath(dst)).parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.tmp-", dir=parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if dst.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old-", dir=parent))
        os.rmdir(old)
        os.replace(dst, old)
    os.replace(tmp, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def load_nifti(path: str | Path, what: str = "image"):
    """Load a NIfTI header + data; any failure becomes a DataError naming the file."""
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} file {path} does not exist")
    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types for truncated / corrupt files
        raise DataError(f"{what} file {path} is unreadable or truncated ({type(exc).__name__}: {exc})") from None
    if data.ndim < 3:
        raise DataError(f"{what} file {path} is {data.ndim}D with shape {data.shape}; expected a 3D volume")
    return img, data


def load_image(path: str | Path, nonfinite: str = "refuse", what: str = "image"):
    """(nibabel image, voxels, how many non-finite voxels were repaired) of an image volume.

    A header that cannot describe a volume, complex voxels or (with `nonfinite` "refuse", the
    default) NaN / Inf voxels are refused naming the file; "zero" / "min" replace non-finite
    voxels instead (medseg_nas.volume_checks), and the caller writes the repaired voxels.
    """
    img, data = load_nifti(path, what)
    check_header(img, path, f"{what} file")
    data, repaired = usable_voxels(data, path, nonfinite, f"{what} file")
    return img, data, repaired


def write_image(src: Path, img, data: np.ndarray, repaired: int, dst: Path) -> None:
    """The image as prepared: bytes copied, or (after a non-finite repair) the repaired voxels
    as float32 on the source's exact grid and header."""
    import nibabel as nib

    if not repaired:
        copy_nifti(src, dst)
        return
    header = img.header.copy()
    header.set_data_dtype(np.float32)
    out = nib.Nifti1Image(np.asarray(data, dtype=np.float32), img.affine, header)
    out.header.set_slope_inter(1, 0)
    nib.save(out, str(dst))


def label_values(data: np.ndarray, path: Path) -> np.ndarray:
    """Unique integer values of a label volume (float-stored labels are accepted if integral)."""
    if np.issubdtype(data.dtype, np.floating):
        if not np.all(np.isfinite(data)):
            raise DataError(f"label file {path} contains NaN or infinite values")
        rounded = np.rint(data)
        if np.abs(data - rounded).max(initial=0.0) > 1e-3:
            raise DataError(f"label file {path} contains non-integer values (e.g. {data[np.abs(data - rounded) > 1e-3].flat[0]:g})")
        data = rounded
    return np.unique(data).astype(np.int64)


def check_pair(image_path: Path, img, image_data: np.ndarray, label_path: Path, lab, label_data: np.ndarray,
               allowed_labels, atol: float = 1e-3) -> np.ndarray:
    """Shape, affine and label-value checks of one image/label pair; returns the label values."""
    ishape = image_data.shape[:3]
    if tuple(label_data.shape[:3]) != tuple(ishape) or label_data.ndim != 3:
        raise DataError(
            f"label file {label_path} has shape {tuple(label_data.shape)} but its image {image_path} has "
            f"spatial shape {tuple(ishape)}"
        )
    a, b = np.asarray(img.affine, float), np.asarray(lab.affine, float)
    tol = atol * max(1.0, float(np.abs(a[:3, :3]).max()))
    if not np.allclose(a, b, atol=max(tol, 1e-3), rtol=1e-4):
        raise DataError(
            f"label file {label_path} has a different affine from its image {image_path} "
            f"(max difference {np.abs(a - b).max():.4g}); they are not on the same grid"
        )
    values = label_values(label_data, label_path)
    bad = sorted(set(values.tolist()) - set(int(v) for v in allowed_labels))
    if bad:
        raise DataError(
            f"label file {label_path} contains values {bad} outside the declared labels {sorted(int(v) for v in allowed_labels)}"
        )
    return values


def copy_nifti(src: Path, dst: Path) -> None:
    """Copy a NIfTI as .nii.gz (bytes copied when already gzipped, re-saved otherwise)."""
    import nibabel as nib

    if str(src).endswith(".nii.gz"):
        shutil.copyfile(src, dst)
    else:
        img = nib.load(str(src))
        nib.save(img, str(dst))


def write_dataset_json(root: Path, *, name: str, description: str, modality: dict, labels: dict,
                       training: list[dict], test: list[str], stamp: dict, extra: dict | None = None) -> dict:
    """MSD `dataset.json`: labels and modality keyed by strings "0", "1", ...; relative paths."""
    meta = {
        "name": name,
        "description": description,
        "tensorImageSize": "3D",
        "modality": {str(k): v for k, v in modality.items()},
        "labels": {str(k): v for k, v in sorted(labels.items(), key=lambda kv: int(kv[0]))},
        "numTraining": len(training),
        "numTest": len(test),
        "training": training,
        "test": test,
        STAMP_KEY: stamp,
    }
    if extra:
        meta.update(extra)
    (root / "dataset.json").write_text(json.dumps(meta, indent=1))
    return meta


def make_msd_dirs(root: Path, with_test: bool = False) -> None:
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(parents=True, exist_ok=True)
    if with_test:
        (root / "imagesTs").mkdir(parents=True, exist_ok=True)


def read_stamp(dst: Path) -> dict | None:
    try:
        return json.loads((Path(dst) / "dataset.json").read_text()).get(STAMP_KEY)
    except Exception:
        return None
