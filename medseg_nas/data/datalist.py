"""Reading an MSD-layout folder: `dataset.json` metadata and the training datalist."""

from __future__ import annotations

import json
from pathlib import Path

from medseg_nas.errors import DataError


def _strip(name: str) -> str:
    for suf in (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd"):
        if name.endswith(suf):
            return name[: -len(suf)]
    return name


def load_dataset_json(root: str | Path) -> dict:
    """`dataset.json` with `labels` as {int: name} and `modality` as {int: name}."""
    root = Path(root)
    path = root / "dataset.json"
    if not root.is_dir():
        raise DataError(f"dataset folder {root} does not exist (run `medseg-nas prepare` or set data.root)")
    if not path.is_file():
        raise DataError(f"{path} is missing; data.root must be an MSD-layout folder with dataset.json")
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON ({exc})") from None
    for key in ("labels", "training"):
        if key not in meta:
            raise DataError(f"{path} has no '{key}' entry")
    labels = meta["labels"]
    try:
        if all(str(k).lstrip("-").isdigit() for k in labels):
            labels = {int(k): str(v) for k, v in labels.items()}
        else:  # nnU-Net v2 style {"background": 0, ...}
            labels = {int(v): str(k) for k, v in labels.items()}
    except (TypeError, ValueError):
        raise DataError(f"{path}: 'labels' must map integers to names, got {meta['labels']!r}") from None
    labels.setdefault(0, "background")
    modality = meta.get("modality", {"0": "MRI"})
    if isinstance(modality, str):
        modality = {"0": modality}
    if isinstance(modality, list):
        modality = {str(i): m for i, m in enumerate(modality)}
    try:
        modality = {int(k): str(v) for k, v in modality.items()}
    except (TypeError, ValueError, AttributeError):
        raise DataError(f"{path}: 'modality' must map channel numbers to names, got {meta.get('modality')!r}") from None
    meta = dict(meta)
    meta["labels"] = dict(sorted(labels.items()))
    meta["modality"] = dict(sorted(modality.items()))
    return meta


def load_datalist(root: str | Path) -> list[dict]:
    """Training cases of an MSD folder as `{"id", "image", "label", ...}` with absolute paths.

    Uses MONAI's `load_decathlon_datalist`; entries pointing at macOS `._*` files are dropped,
    extra keys (e.g. ACDC's "group") are kept, and missing files raise one `DataError`.
    """
    from monai.data import load_decathlon_datalist

    root = Path(root)
    load_dataset_json(root)  # clear errors first
    try:
        items = load_decathlon_datalist(str(root / "dataset.json"), is_segmentation=True,
                                        data_list_key="training", base_dir=str(root))
    except (KeyError, ValueError, TypeError) as exc:
        raise DataError(f"{root / 'dataset.json'}: bad 'training' list ({exc})") from None
    out, seen = [], set()
    for item in items:
        if "image" not in item or "label" not in item:
            raise DataError(f"{root / 'dataset.json'}: training entry {item!r} needs 'image' and 'label'")
        image = item["image"]
        if isinstance(image, (list, tuple)):
            raise DataError(f"{root / 'dataset.json'}: one image file per case is supported, got {image!r}")
        if Path(image).name.startswith("._") or Path(item["label"]).name.startswith("._"):
            continue
        for key in ("image", "label"):
            if not Path(item[key]).is_file():
                raise DataError(f"{key} file {item[key]} listed in {root / 'dataset.json'} does not exist")
        case = dict(item)
        case.setdefault("id", _strip(Path(image).name))
        if case["id"] in seen:
            raise DataError(f"{root / 'dataset.json'}: case id '{case['id']}' appears twice")
        seen.add(case["id"])
        out.append(case)
    if not out:
        raise DataError(f"{root / 'dataset.json'} lists no training cases")
    return out
