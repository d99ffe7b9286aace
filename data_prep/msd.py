"""`prepare msd`: validate a Medical Segmentation Decathlon task as downloaded and write a clean copy.

Checks: `dataset.json` readable with `labels`, `modality` and a `training` list; every listed
image/label exists and is readable; image and label have the same spatial shape and affine
(within tolerance); label values are integers within the declared labels. macOS AppleDouble
`._*` files shipped in the archives are ignored. Labels stored as float are rewritten as uint8;
everything else is copied byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path

from medseg_nas.errors import DataError

from data_prep.common import (
    check_pair,
    copy_nifti,
    is_hidden,
    load_nifti,
    make_msd_dirs,
    save_label_nifti,
    staged_output,
    strip_nifti_suffix,
    write_dataset_json,
)

import numpy as np


def read_dataset_json(src: Path) -> dict:
    path = src / "dataset.json"
    if not src.is_dir():
        raise DataError(f"source folder {src} does not exist")
    if not path.is_file():
        if not any(p for p in src.iterdir() if not is_hidden(p)):
            raise DataError(f"source folder {src} is empty")
        raise DataError(f"{path} is missing; an MSD task folder needs dataset.json")
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON ({exc})") from None
    for key in ("labels", "modality", "training"):
        if key not in meta:
            raise DataError(f"{path} has no '{key}' entry")
    if not isinstance(meta["training"], list) or not meta["training"]:
        raise DataError(f"{path}: 'training' must be a non-empty list")
    return meta


def parse_labels(labels: dict, where: str) -> dict[int, str]:
    """MSD labels {"0": "background"}; nnU-Net v2 style {"background": 0} is accepted too."""
    out: dict[int, str] = {}
    try:
        if all(str(k).lstrip("-").isdigit() for k in labels):
            out = {int(k): str(v) for k, v in labels.items()}
        else:
            for k, v in labels.items():
                if isinstance(v, (list, tuple)):  # nnU-Net v2 region labels
                    raise DataError(f"{where}: region-based labels ({k}: {v}) are not supported")
                out[int(v)] = str(k)
    except (TypeError, ValueError):
        raise DataError(f"{where}: 'labels' must map integers to names, got {labels!r}") from None
    if 0 not in out:
        out[0] = "background"
    return dict(sorted(out.items()))


def _resolve(src: Path, rel: str) -> Path:
    rel = str(rel)
    return (src / rel[2:]) if rel.startswith("./") else (src / rel)


def convert(src: str | Path, dst: str | Path, force: bool = False, cases: int = 0) -> dict:
    """Validate `src` (an MSD task folder) and write a clean copy to `dst`; `cases` > 0 keeps the first N."""
    src, dst = Path(src), Path(dst)
    meta = read_dataset_json(src)
    where = str(src / "dataset.json")
    labels = parse_labels(meta["labels"], where)
    modality = meta["modality"]
    if isinstance(modality, str):
        modality = {"0": modality}
    entries = []
    for i, item in enumerate(meta["training"]):
        if not isinstance(item, dict) or "image" not in item or "label" not in item:
            raise DataError(f"{where}: training entry {i} needs 'image' and 'label', got {item!r}")
        if is_hidden(item["image"]) or is_hidden(item["label"]):
            continue
        entries.append(item)
    if cases and cases > 0:
        entries = entries[:cases]
    tests = []
    for item in meta.get("test", []) or []:
        rel = item["image"] if isinstance(item, dict) else item
        if not is_hidden(rel):
            tests.append(rel)
    if cases and cases > 0:
        tests = tests[:cases]

    with staged_output(dst, src, force) as tmp:
        make_msd_dirs(tmp, with_test=bool(tests))
        training = []
        for item in entries:
            ipath, lpath = _resolve(src, item["image"]), _resolve(src, item["label"])
            img, idata = load_nifti(ipath, "image")
            lab, ldata = load_nifti(lpath, "label")
            check_pair(ipath, img, idata, lpath, lab, ldata, labels.keys())
            n_channels = 1 if idata.ndim == 3 else idata.shape[3]
            if n_channels != len(modality):
                raise DataError(
                    f"image file {ipath} has {n_channels} channel(s) but {where} declares {len(modality)} modalities"
                )
            case = strip_nifti_suffix(ipath.name)
            copy_nifti(ipath, tmp / "imagesTr" / f"{case}.nii.gz")
            if np.issubdtype(ldata.dtype, np.floating) or ldata.dtype.itemsize > 2:
                save_label_nifti(ldata, lab, tmp / "labelsTr" / f"{case}.nii.gz")
            else:
                copy_nifti(lpath, tmp / "labelsTr" / f"{case}.nii.gz")
            training.append({"image": f"./imagesTr/{case}.nii.gz", "label": f"./labelsTr/{case}.nii.gz"})
        test_rel = []
        for rel in tests:
            ipath = _resolve(src, rel)
            load_nifti(ipath, "test image")
            case = strip_nifti_suffix(ipath.name)
            copy_nifti(ipath, tmp / "imagesTs" / f"{case}.nii.gz")
            test_rel.append(f"./imagesTs/{case}.nii.gz")
        extra = {k: meta[k] for k in ("reference", "licence", "license", "release") if k in meta}
        out = write_dataset_json(
            tmp, name=str(meta.get("name", src.name)), description=str(meta.get("description", "")),
            modality=modality, labels=labels, training=training, test=test_rel,
            stamp={"source": "msd", "src": str(src), "cases": int(cases or 0)}, extra=extra,
        )
    return out
