"""`prepare promise12`: PROMISE12 MetaImage files (`CaseXX.mhd/.raw`, `CaseXX_segmentation.mhd/.raw`)
to MSD-layout NIfTI. SimpleITK reads the MetaImage and writes NIfTI, so spacing, origin and
direction carry over (LPS → RAS handled by ITK). Labels {0 background, 1 prostate}; cases
without a `_segmentation` file go to `imagesTs/`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from medseg_nas.errors import DataError
from medseg_nas.volume_checks import nonfinite_stamp, usable_voxels

from data_prep.common import is_hidden, make_msd_dirs, staged_output, write_dataset_json

LABELS = {0: "background", 1: "prostate"}


_ELEMENT_BYTES = {"MET_UCHAR": 1, "MET_CHAR": 1, "MET_USHORT": 2, "MET_SHORT": 2, "MET_UINT": 4, "MET_INT": 4,
                  "MET_FLOAT": 4, "MET_DOUBLE": 8, "MET_ULONG": 8, "MET_LONG": 8}


def _check_mhd(path: Path, what: str) -> None:
    """Catch the common MetaImage problems (missing / truncated .raw) with a readable message."""
    try:
        header = dict(line.split("=", 1) for line in path.read_text(errors="replace").splitlines() if "=" in line)
    except OSError as exc:
        raise DataError(f"{what} file {path} is unreadable ({exc})") from None
    header = {k.strip(): v.strip() for k, v in header.items()}
    data_file = header.get("ElementDataFile", "")
    if not data_file or data_file == "LOCAL" or header.get("CompressedData", "False").lower() == "true":
        return
    raw = path.parent / data_file
    if not raw.is_file():
        raise DataError(f"{what} file {path} points to data file {raw}, which does not exist")
    try:
        n = int(np.prod([int(v) for v in header.get("DimSize", "").split()]))
        channels = int(header.get("ElementNumberOfChannels", "1"))
        expected = n * channels * _ELEMENT_BYTES[header.get("ElementType", "")]
    except (ValueError, KeyError):
        return  # unusual header: let SimpleITK judge
    if raw.stat().st_size < expected:
        raise DataError(f"{what} file {path} is truncated: its data file {raw.name} has {raw.stat().st_size} bytes, "
                        f"expected {expected}")


def _read(path: Path, what: str):
    import SimpleITK as sitk

    if path.suffix == ".mhd":
        _check_mhd(path, what)
    try:
        img = sitk.ReadImage(str(path))
        arr = sitk.GetArrayViewFromImage(img)
    except Exception as exc:
        # ITK puts "Exception thrown in ...: file.cxx:99:" first, the reason ("sitk::ERROR: ...") after
        msg = [m.strip() for m in str(exc).strip().splitlines() if m.strip()]
        detail = next((m for m in msg if "ERROR" in m.upper() and not m.startswith("Exception thrown")),
                      msg[-1] if msg else type(exc).__name__)
        detail = detail.split("ERROR:", 1)[-1].strip()
        raise DataError(f"{what} file {path} is unreadable or truncated ({detail[:200]})") from None
    if img.GetDimension() != 3:
        raise DataError(f"{what} file {path} is {img.GetDimension()}D; expected a 3D volume")
    return img, np.asarray(arr)


def _same_geometry(a, b) -> bool:
    return (a.GetSize() == b.GetSize()
            and np.allclose(a.GetSpacing(), b.GetSpacing(), rtol=1e-4, atol=1e-4)
            and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-2)
            and np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-3))


def find_cases(src: Path) -> list[str]:
    if not src.is_dir():
        raise DataError(f"source folder {src} does not exist")
    names = sorted(p.name[:-4] for p in src.glob("*.mhd")
                   if not is_hidden(p) and not p.name.endswith("_segmentation.mhd"))
    if not names:
        if not any(p for p in src.iterdir() if not is_hidden(p)):
            raise DataError(f"source folder {src} is empty")
        raise DataError(f"source folder {src} has no CaseXX.mhd files (expected the PROMISE12 folder)")
    return names


def _usable_image(img, arr: np.ndarray, path: Path, nonfinite: str):
    """(the image as it will be written, how many non-finite voxels were replaced): refused on a
    zero spacing, and complex or non-finite voxels handled as every converter does
    (medseg_nas.volume_checks.usable_voxels)."""
    import SimpleITK as sitk

    if min(img.GetSpacing()) <= 1e-6:
        raise DataError(f"image file {path} has a zero voxel spacing {img.GetSpacing()}; the voxel grid is undefined")
    fixed, repaired = usable_voxels(arr, path, nonfinite)
    if not repaired:
        return img, 0
    out = sitk.GetImageFromArray(fixed.astype(np.float32))
    out.CopyInformation(img)
    return out, repaired


def convert(src: str | Path, dst: str | Path, force: bool = False, cases: int = 0, nonfinite: str = "refuse") -> dict:
    import SimpleITK as sitk

    src, dst = Path(src), Path(dst)
    names = find_cases(src)
    if cases and cases > 0:
        names = names[:cases]
    orphan = sorted(p for p in src.glob("*_segmentation.mhd")
                    if not is_hidden(p) and not (src / (p.name[: -len("_segmentation.mhd")] + ".mhd")).is_file())
    if orphan:
        raise DataError(f"segmentation {orphan[0]} has no image {orphan[0].name.replace('_segmentation', '')} next to it")
    with staged_output(dst, src, force) as tmp:
        training, tests, n_repaired = [], [], 0
        has_test = any(not (src / f"{n}_segmentation.mhd").is_file() for n in names)
        make_msd_dirs(tmp, with_test=has_test)
        for name in names:
            ipath, lpath = src / f"{name}.mhd", src / f"{name}_segmentation.mhd"
            img, iarr = _read(ipath, "image")
            img, repaired = _usable_image(img, iarr, ipath, nonfinite)
            n_repaired += repaired
            case = re.sub(r"[^A-Za-z0-9_-]", "_", name)
            if not lpath.is_file():
                sitk.WriteImage(img, str(tmp / "imagesTs" / f"{case}.nii.gz"), True)
                tests.append(f"./imagesTs/{case}.nii.gz")
                continue
            lab, larr = _read(lpath, "segmentation")
            if not _same_geometry(img, lab):
                raise DataError(
                    f"segmentation {lpath} does not match its image {ipath}: size {lab.GetSize()} vs {img.GetSize()}, "
                    f"spacing {tuple(round(s, 4) for s in lab.GetSpacing())} vs {tuple(round(s, 4) for s in img.GetSpacing())}"
                )
            vals = np.unique(larr)
            if np.issubdtype(vals.dtype, np.floating) and np.abs(vals - np.rint(vals)).max(initial=0) > 1e-3:
                raise DataError(f"segmentation {lpath} contains non-integer values")
            bad = sorted(set(np.rint(vals).astype(int).tolist()) - set(LABELS))
            if bad:
                raise DataError(f"segmentation {lpath} contains values {bad} outside the declared labels [0, 1]")
            lab_u8 = sitk.Cast(sitk.Round(lab) if lab.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64) else lab,
                               sitk.sitkUInt8)
            lab_u8.CopyInformation(img)
            sitk.WriteImage(img, str(tmp / "imagesTr" / f"{case}.nii.gz"), True)
            sitk.WriteImage(lab_u8, str(tmp / "labelsTr" / f"{case}.nii.gz"), True)
            training.append({"image": f"./imagesTr/{case}.nii.gz", "label": f"./labelsTr/{case}.nii.gz"})
        if not training:
            raise DataError(f"source folder {src} has no CaseXX_segmentation.mhd files: nothing to train on")
        meta = write_dataset_json(
            tmp, name="PROMISE12", description="Prostate MR segmentation (MICCAI 2012 challenge)",
            modality={0: "MRI"}, labels=LABELS, training=training, test=tests,
            stamp={"source": "promise12", "src": str(src), "cases": int(cases or 0),
                   **nonfinite_stamp(nonfinite, n_repaired)},
            extra={"reference": "Litjens et al., Medical Image Analysis 2014 (PROMISE12)"},
        )
    return meta
