"""What makes an image volume unusable before any network sees it, said once for prepare,
the fingerprint and predict.

A single NaN voxel survives z-score normalisation as NaN, turns every logit of the sliding
window that touches it into NaN, and argmax of NaN is class 0: a search then records trials
that look better than real ones and predict writes an empty mask, both with exit 0. Complex
voxels, RGB pixel types, zero spacing or a non-finite affine fail later in ways that name
no file. So these are refused up front with one line naming the file and the problem.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medseg_nas.errors import DataError

# `prepare --nonfinite` policies: refuse (default), or replace non-finite voxels by a value
NONFINITE_POLICIES = ("refuse", "zero", "min")


def header_problem(img) -> str | None:
    """Why a nibabel image's header cannot describe a volume we can resample (None: it can)."""
    shape = tuple(int(n) for n in img.shape)
    if len(shape) > 4:
        return f"is a {len(shape)}D image with shape {shape}; expected a 3D volume (or 4D with one channel per modality)"
    dtype = img.get_data_dtype()
    if dtype.fields is not None:  # RGB / RGBA NIfTI pixel types are structured dtypes
        return f"stores {', '.join(dtype.names)} pixels ({dtype}); expected one grey value per voxel (convert it to greyscale)"
    if np.issubdtype(dtype, np.complexfloating):
        return f"stores complex voxels ({dtype}); expected real values (save the magnitude image)"
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)):
        return "has a non-finite value (NaN or Inf) in its affine (sform/qform); the voxel grid is undefined"
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    stored = _stored_pixdim(img)
    if stored is not None:  # nibabel quietly turns a stored pixdim of 0 into 1 mm when it loads a file
        spacing = np.minimum(spacing, np.abs(stored))
    if np.any(spacing <= 1e-6):
        return (f"has a zero voxel spacing ({', '.join(f'{s:g}' for s in spacing)} mm) in its header (pixdim / affine); "
                "the voxel grid is undefined (fix pixdim / the sform)")
    return None


def _stored_pixdim(img) -> np.ndarray | None:
    """pixdim[1:4] as written in a NIfTI-1 file's header (None when not a NIfTI-1 file on disk)."""
    import nibabel as nib

    holder = getattr(img, "file_map", {}).get("header") or getattr(img, "file_map", {}).get("image")
    name = getattr(holder, "filename", None)
    if not isinstance(img, nib.Nifti1Image) or not name:
        return None
    try:
        with nib.openers.ImageOpener(name) as fh:
            block = fh.read(348)
        raw = nib.Nifti1Header(binaryblock=block, check=False)
        return np.asarray(raw["pixdim"][1:4], dtype=np.float64)
    except Exception:  # noqa: BLE001 — the file was already read once; this check only adds
        return None


def voxel_problem(data: np.ndarray) -> str | None:
    """Why an image's voxel values cannot be trained on or segmented (None: they can)."""
    if np.iscomplexobj(data):
        return f"stores complex voxels ({data.dtype}); expected real values (save the magnitude image)"
    if not np.issubdtype(data.dtype, np.floating):
        return None  # integer voxels are always finite
    bad = int(data.size - np.count_nonzero(np.isfinite(data)))
    if bad:
        n_nan = int(np.count_nonzero(np.isnan(data)))
        return (f"has {bad:,} non-finite voxel(s) ({n_nan:,} NaN, {bad - n_nan:,} infinite) of {data.size:,}; "
                "a network turns them into NaN logits and an empty segmentation")
    return None


def check_header(img, path: str | Path, what: str = "image file") -> None:
    """DataError naming `path` when its header cannot describe a volume (checked before reading
    the voxels: a 5D or RGB file is refused without loading it)."""
    problem = header_problem(img)
    if problem:
        raise DataError(f"{what} {path} {problem}".lstrip())


def check_voxels(data: np.ndarray, path: str | Path, what: str = "image file") -> None:
    """DataError naming `path` when its voxels are complex or not all finite."""
    problem = voxel_problem(data)
    if problem:
        raise DataError(f"{what} {path} {problem}".lstrip())


def usable_voxels(data: np.ndarray, path: str | Path, policy: str, what: str = "image file") -> tuple[np.ndarray, int]:
    """(voxels a converter may write, how many non-finite ones `policy` replaced): complex voxels
    are always refused, non-finite ones refused under "refuse" (naming the repair options) or
    replaced under "zero" / "min". The one place a converter's non-finite policy is applied."""
    problem = voxel_problem(data)
    if problem is None:
        return data, 0
    if policy == "refuse" or np.iscomplexobj(data):
        hint = "" if np.iscomplexobj(data) else (
            f"; fix the file, or prepare with --nonfinite {'|'.join(NONFINITE_POLICIES[1:])} to replace them")
        raise DataError(f"{what} {path} {problem}{hint}")
    try:
        return repair_nonfinite(data, policy)
    except DataError as exc:
        raise DataError(f"{what} {path}: {exc}") from None


def nonfinite_stamp(policy: str, repaired: int) -> dict:
    """What a converter adds to its dataset.json stamp: nothing under "refuse" (so datasets
    prepared before the option existed keep their stamps), else the policy and the count."""
    return {} if policy == "refuse" else {"nonfinite": policy, "nonfinite_repaired": int(repaired)}


def repair_nonfinite(data: np.ndarray, policy: str) -> tuple[np.ndarray, int]:
    """(data with non-finite voxels replaced by `policy`'s value, how many were replaced).

    `zero` writes 0; `min` writes the smallest finite voxel of the volume (background in MRI
    and CT). A volume without any finite voxel cannot be repaired.
    """
    if policy not in NONFINITE_POLICIES[1:]:
        raise ValueError(f"unknown non-finite repair policy {policy!r}")
    finite = np.isfinite(data)
    n_bad = int(data.size - np.count_nonzero(finite))
    if not n_bad:
        return data, 0
    if not finite.any():
        raise DataError("every voxel is non-finite: nothing to repair from")
    value = 0.0 if policy == "zero" else float(data[finite].min())
    out = np.array(data, copy=True)
    out[~finite] = value
    return out, n_bad
