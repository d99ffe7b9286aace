"""`prepare acdc`: the ACDC challenge download (training or labelled testing folder) to MSD layout.

Original layout (per patient): `patientXXX/Info.cfg` (`ED: 1`, `ES: 12`, ...),
`patientXXX_4d.nii.gz` (cine, ignored), `patientXXX_frameNN.nii.gz` and `..._frameNN_gt.nii.gz`.
Each patient gives two cases, `patientXXX_ED` and `patientXXX_ES`, keeping spacing and affine.
Labels: 0 background, 1 RV cavity, 2 myocardium, 3 LV cavity. Training entries carry
`"group": "patientXXX"` so a split never separates the two frames of one patient.
"""

from __future__ import annotations

import re
from pathlib import Path

from medseg_nas.errors import DataError
from medseg_nas.volume_checks import nonfinite_stamp
from medseg_nas.niftiio import NIFTI_SUFFIXES

from data_prep.common import (
    check_pair,
    copy_nifti,
    is_hidden,
    load_image,
    load_nifti,
    make_msd_dirs,
    staged_output,
    write_dataset_json,
    write_image,
)

LABELS = {0: "background", 1: "RV cavity", 2: "myocardium", 3: "LV cavity"}


def read_info(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise DataError(f"{path} is missing (each ACDC patient folder needs Info.cfg with ED/ES frames)")
    info = {}
    try:
        for line in path.read_text().splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                info[k.strip()] = v.strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is unreadable ({exc})") from None
    for key in ("ED", "ES"):
        if key not in info:
            raise DataError(f"{path} has no '{key}:' line")
        try:
            int(info[key])
        except ValueError:
            raise DataError(f"{path}: '{key}: {info[key]}' is not a frame number") from None
    return info


def find_patients(src: Path) -> list[Path]:
    if not src.is_dir():
        raise DataError(f"source folder {src} does not exist")
    pats = sorted(p for p in src.iterdir() if p.is_dir() and re.fullmatch(r"patient\d+", p.name))
    if not pats:  # the database root: training/ and testing/ inside
        pats = sorted(p for sub in ("training", "testing") if (src / sub).is_dir()
                      for p in (src / sub).iterdir() if p.is_dir() and re.fullmatch(r"patient\d+", p.name))
    if not pats:
        if not any(p for p in src.iterdir() if not is_hidden(p)):
            raise DataError(f"source folder {src} is empty")
        raise DataError(f"source folder {src} has no patientXXX/ folders (expected the ACDC training or testing folder)")
    return pats


def _frame_file(pdir: Path, frame: int, gt: bool) -> Path:
    stem = f"{pdir.name}_frame{frame:02d}{'_gt' if gt else ''}"
    for suf in NIFTI_SUFFIXES:
        if (pdir / (stem + suf)).is_file():
            return pdir / (stem + suf)
    return pdir / (stem + ".nii.gz")


def convert(src: str | Path, dst: str | Path, force: bool = False, cases: int = 0, nonfinite: str = "refuse") -> dict:
    """Convert an ACDC folder; `cases` > 0 keeps the first N patients (2 cases each)."""
    src, dst = Path(src), Path(dst)
    patients = find_patients(src)
    if cases and cases > 0:
        patients = patients[:cases]
    with staged_output(dst, src, force) as tmp:
        make_msd_dirs(tmp)
        training, n_repaired = [], 0
        for pdir in patients:
            info = read_info(pdir / "Info.cfg")
            for phase in ("ED", "ES"):
                frame = int(info[phase])
                ipath, lpath = _frame_file(pdir, frame, False), _frame_file(pdir, frame, True)
                if not ipath.is_file():
                    raise DataError(f"image file {ipath} is missing ({phase} frame {frame} from {pdir / 'Info.cfg'})")
                if not lpath.is_file():
                    raise DataError(f"ground truth {lpath} is missing for {phase} frame {frame} of {pdir.name}")
                img, idata, repaired = load_image(ipath, nonfinite)
                lab, ldata = load_nifti(lpath, "label")
                if idata.ndim != 3:
                    raise DataError(f"image file {ipath} has shape {idata.shape}; expected one 3D frame")
                check_pair(ipath, img, idata, lpath, lab, ldata, LABELS.keys())
                case = f"{pdir.name}_{phase}"
                write_image(ipath, img, idata, repaired, tmp / "imagesTr" / f"{case}.nii.gz")
                n_repaired += repaired
                copy_nifti(lpath, tmp / "labelsTr" / f"{case}.nii.gz")
                training.append({"image": f"./imagesTr/{case}.nii.gz", "label": f"./labelsTr/{case}.nii.gz",
                                 "group": pdir.name})
        meta = write_dataset_json(
            tmp, name="ACDC", description="Automated Cardiac Diagnosis Challenge, ED and ES frames",
            modality={0: "MRI"}, labels=LABELS, training=training, test=[],
            stamp={"source": "acdc", "src": str(src), "cases": int(cases or 0),
                   **nonfinite_stamp(nonfinite, n_repaired)},
            extra={"reference": "Bernard et al., IEEE TMI 2018 (ACDC)"},
        )
    return meta
