"""`prepare msd`: validate a Medical Segmentation Decathlon task as downloaded and write a clean copy.

Checks: `dataset.json` readable with `labels`, `modality` and a `training` list; every listed
image/label exists and is readable; image and label have the same spatial shape and affine
(within tolerance); label values are integers within the declared labels. macOS AppleDouble
`._*` files shipped in the archives are ignored. Every `dataset.json` entry must be a relative
path string that stays inside the task folder (no absolute paths, no `..` escaping it), and no
two entries may write the same case file: each would otherwise read files from elsewhere on the
machine or silently overwrite a case. Labels stored as float are rewritten as uint8;
everything else is copied byte for byte.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from medseg_nas.errors import DataError
from medseg_nas.volume_checks import nonfinite_stamp
from medseg_nas.niftiio import save_label_nifti, strip_nifti_suffix

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
    if not isinstance(meta.get("test") or [], list):
        raise DataError(f"{path}: 'test' must be a list, got {_short(meta['test'])}")
    if not isinstance(meta["labels"], dict):
        raise DataError(f"{path}: 'labels' must map integers to names, got {_short(meta['labels'])}")
    if not isinstance(meta["modality"], (str, dict)):
        raise DataError(f"{path}: 'modality' must be a name or a {{\"0\": name}} mapping, got {_short(meta['modality'])}")
    return meta


def _short(value, limit: int = 160) -> str:
    """repr of a dataset.json value, cut so that one error line stays one readable line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


def _entry_file(src: Path, rel, where: str, entry: str, key: str) -> Path:
    """The file a dataset.json entry names, refused unless it is a relative path inside `src`.

    `entry` ("training entry 3 {...}") points the user at the line to fix. The check is on the
    path as written: symbolic links inside the task folder are the user's own choice.
    """
    def refuse(problem: str) -> DataError:
        return DataError(f"{where}: {entry}: '{key}' {problem}")

    if not isinstance(rel, str):
        raise refuse(f"must be a path string, got {type(rel).__name__} {_short(rel)}")
    if not rel.strip():
        raise refuse("is an empty path")
    if os.path.isabs(rel):
        raise refuse(f"is an absolute path ({rel}); paths must be relative to --src {src}")
    norm = os.path.normpath(rel)
    if norm == os.pardir or norm.startswith(os.pardir + os.sep):
        raise refuse(f"path {rel} points outside --src {src}")
    if norm == os.curdir:
        raise refuse(f"path {rel} names the task folder itself, not a file")
    return src / norm


def _test_image(item, where: str, entry: str) -> object:
    """The `image` of a test entry (a plain path or an {"image": path} dict: MSD writes both)."""
    if isinstance(item, dict):
        if "image" not in item:
            raise DataError(f"{where}: {entry} needs 'image'")
        return item["image"]
    return item


def _check_unique_cases(files: list[tuple[str, Path]], where: str, folder: str) -> None:
    """Refuse two entries that would be written to the same `folder/<case>.nii.gz`."""
    seen: dict[str, str] = {}
    for entry, path in files:
        case = strip_nifti_suffix(path.name)
        if case in seen:
            raise DataError(
                f"{where}: {seen[case]} and {entry} both name case '{case}' ({folder}/{case}.nii.gz); "
                "one would overwrite the other: give every case a distinct file name"
            )
        seen[case] = entry


def convert(src: str | Path, dst: str | Path, force: bool = False, cases: int = 0, nonfinite: str = "refuse") -> dict:
    """Validate `src` (an MSD task folder) and write a clean copy to `dst`; `cases` > 0 keeps the first N;
    `nonfinite` says what to do with NaN / Inf image voxels (data_prep.common.load_image)."""
    src, dst = Path(src), Path(dst)
    meta = read_dataset_json(src)
    where = str(src / "dataset.json")
    labels = parse_labels(meta["labels"], where)
    modality = meta["modality"]
    if isinstance(modality, str):
        modality = {"0": modality}
    entries = []  # (entry description, image file, label file)
    for i, item in enumerate(meta["training"]):
        entry = f"training entry {i} ({_short(item)})"
        if not isinstance(item, dict) or "image" not in item or "label" not in item:
            raise DataError(f"{where}: {entry} needs 'image' and 'label'")
        ipath = _entry_file(src, item["image"], where, entry, "image")
        lpath = _entry_file(src, item["label"], where, entry, "label")
        if is_hidden(ipath) or is_hidden(lpath):
            continue
        entries.append((entry, ipath, lpath))
    tests = []  # (entry description, image file)
    for i, item in enumerate(meta.get("test") or []):
        entry = f"test entry {i} ({_short(item)})"
        ipath = _entry_file(src, _test_image(item, where, entry), where, entry, "image")
        if not is_hidden(ipath):
            tests.append((entry, ipath))
    _check_unique_cases([(e, p) for e, p, _ in entries], where, "imagesTr")
    _check_unique_cases(tests, where, "imagesTs")
    if cases and cases > 0:
        entries = entries[:cases]
        tests = tests[:cases]

    with staged_output(dst, src, force) as tmp:
        make_msd_dirs(tmp, with_test=bool(tests))
        training, n_repaired = [], 0
        for _, ipath, lpath in entries:
            img, idata, repaired = load_image(ipath, nonfinite)
            lab, ldata = load_nifti(lpath, "label")
            check_pair(ipath, img, idata, lpath, lab, ldata, labels.keys())
            n_channels = 1 if idata.ndim == 3 else idata.shape[3]
            if n_channels != len(modality):
                raise DataError(
                    f"image file {ipath} has {n_channels} channel(s) but {where} declares {len(modality)} modalities"
                )
            case = strip_nifti_suffix(ipath.name)
            write_image(ipath, img, idata, repaired, tmp / "imagesTr" / f"{case}.nii.gz")
            n_repaired += repaired
            if np.issubdtype(ldata.dtype, np.floating) or ldata.dtype.itemsize > 2:
                save_label_nifti(np.rint(ldata), lab, tmp / "labelsTr" / f"{case}.nii.gz")
            else:
                copy_nifti(lpath, tmp / "labelsTr" / f"{case}.nii.gz")
            training.append({"image": f"./imagesTr/{case}.nii.gz", "label": f"./labelsTr/{case}.nii.gz"})
        test_rel = []
        for _, ipath in tests:
            img, idata, repaired = load_image(ipath, nonfinite, "test image")
            case = strip_nifti_suffix(ipath.name)
            write_image(ipath, img, idata, repaired, tmp / "imagesTs" / f"{case}.nii.gz")
            n_repaired += repaired
            test_rel.append(f"./imagesTs/{case}.nii.gz")
        extra = {k: meta[k] for k in ("reference", "licence", "license", "release") if k in meta}
        out = write_dataset_json(
            tmp, name=str(meta.get("name", src.name)), description=str(meta.get("description", "")),
            modality=modality, labels=labels, training=training, test=test_rel,
            stamp={"source": "msd", "src": str(src), "cases": int(cases or 0),
                   **nonfinite_stamp(nonfinite, n_repaired)},
            extra=extra,
        )
    return out
