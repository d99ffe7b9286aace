"""NIfTI file names and label-map writing, shared by predict, evaluate and the dataset converters.

One spelling of the NIfTI suffixes (a case id is the file name without them) and one label
writer, so every label map this project writes, whether a prediction or a converted dataset
label, carries the reference image's exact grid and header.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

NIFTI_SUFFIXES = (".nii.gz", ".nii")


def strip_nifti_suffix(name: str, suffixes: tuple[str, ...] = NIFTI_SUFFIXES) -> str:
    """`name` without the first of `suffixes` it ends with (unchanged when none matches)."""
    for suf in suffixes:
        if name.endswith(suf):
            return name[: -len(suf)]
    return name


def save_label_nifti(labels: np.ndarray, reference, path: str | Path) -> Path:
    """Write `labels` with the reference image's exact affine and header (uint8 data)."""
    import nibabel as nib

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = reference.header.copy()
    header.set_data_dtype(np.uint8)
    if len(header.get_data_shape()) != 3:
        header.set_data_shape(labels.shape)
    out = nib.Nifti1Image(labels.astype(np.uint8), reference.affine, header)
    out.set_qform(reference.affine, code=int(reference.header["qform_code"]) or 1)
    out.set_sform(reference.affine, code=int(reference.header["sform_code"]) or 1)
    out.header.set_slope_inter(1, 0)
    nib.save(out, str(path))
    return path
