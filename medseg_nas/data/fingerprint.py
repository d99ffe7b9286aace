"""Dataset fingerprint (like nnU-Net's): spacing, shapes, foreground intensities, classes.

Computed once from the files and cached as JSON (`fingerprint.json` in the run directory).
Spacings and shapes are reported in RAS axis order (what `Orientationd("RAS")` produces),
whatever the orientation the files are stored in.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from medseg_nas.errors import DataError

from medseg_nas.data.datalist import load_dataset_json
from medseg_nas.volume_checks import check_header, check_voxels

FINGERPRINT_VERSION = 2
SAMPLES_PER_CASE = 10000  # foreground voxels sampled per case and channel for intensity statistics


@dataclass
class Fingerprint:
    n_cases: int
    median_spacing: list[float]  # mm, RAS axis order
    spacing_p10: list[float]
    median_shape: list[int]  # voxels, RAS axis order
    anisotropy: float  # max / min of median_spacing
    anisotropy_per_axis: list[float]  # median_spacing / its finest axis
    thick_axis: int | None  # RAS axis whose spacing is >= 2x the finest, else None
    axcodes: str  # most common stored orientation
    modality: dict[int, str]
    labels: dict[int, str]
    n_classes: int  # including background
    in_channels: int
    intensity: list[dict]  # per channel: mean, std, p00_5, p99_5, min, max (foreground voxels)
    class_fractions: dict[int, float]  # share of voxels per label value
    cases: list[dict] = field(default_factory=list)  # id, shape, spacing (RAS), axcodes
    datalist_hash: str = ""
    version: int = FINGERPRINT_VERSION

    def to_dict(self) -> dict:
        d = asdict(self)
        d["modality"] = {str(k): v for k, v in self.modality.items()}
        d["labels"] = {str(k): v for k, v in self.labels.items()}
        d["class_fractions"] = {str(k): v for k, v in self.class_fractions.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Fingerprint":
        d = dict(d)
        for key in ("modality", "labels", "class_fractions"):
            d[key] = {int(k): v for k, v in d[key].items()}
        return cls(**d)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))


def datalist_hash(datalist: list[dict]) -> str:
    h = hashlib.sha1(str(FINGERPRINT_VERSION).encode())
    for d in sorted(datalist, key=lambda x: x["id"]):
        for key in ("image", "label"):
            p = Path(d[key])
            size = p.stat().st_size if p.is_file() else -1
            h.update(f"{d['id']}|{p.name}|{size};".encode())
    return h.hexdigest()


def _ras(affine: np.ndarray):
    import nibabel as nib

    ornt = nib.io_orientation(affine)
    spacing = np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)
    return ornt[:, 0].astype(int), spacing, "".join(nib.aff2axcodes(affine))


def compute_fingerprint(root: str | Path, datalist: list[dict], cache_path: str | Path | None = None,
                        seed: int = 0) -> Fingerprint:
    """Fingerprint of the cases in `datalist`; reuses `cache_path` when it matches the datalist."""
    import nibabel as nib

    key = datalist_hash(datalist)
    if cache_path is not None and Path(cache_path).is_file():
        try:
            cached = json.loads(Path(cache_path).read_text())
            if cached.get("datalist_hash") == key and cached.get("version") == FINGERPRINT_VERSION:
                return Fingerprint.from_dict(cached)
        except (OSError, json.JSONDecodeError, TypeError, KeyError):
            pass  # stale or corrupt cache: recompute
    meta = load_dataset_json(root)
    labels, modality = meta["labels"], meta["modality"]
    allowed = set(labels)
    n_ch = len(modality)
    rng = np.random.default_rng(seed)
    cases, samples = [], [[] for _ in range(n_ch)]
    counts: Counter = Counter()
    for d in datalist:
        ipath, lpath = Path(d["image"]), Path(d["label"])
        try:
            img = nib.load(str(ipath))
            check_header(img, ipath)  # before reading: a 5D or RGB file is refused by its header
            x = np.asarray(img.dataobj)
        except DataError:
            raise
        except Exception as exc:
            raise DataError(f"image file {ipath} is unreadable or truncated ({type(exc).__name__}: {exc})") from None
        check_voxels(x, ipath)  # non-finite voxels would make every trial look good (volume_checks)
        x = x.astype(np.float32, copy=False)
        try:
            lab = nib.load(str(lpath))
            y = np.asarray(lab.dataobj)
        except Exception as exc:
            raise DataError(f"label file {lpath} is unreadable or truncated ({type(exc).__name__}: {exc})") from None
        if x.ndim == 3:
            x = x[..., None]
        if x.ndim != 4 or x.shape[3] != n_ch:
            raise DataError(f"image file {ipath} has shape {x.shape[:4]}; dataset.json declares {n_ch} channel(s)")
        if y.shape[:3] != x.shape[:3]:
            raise DataError(f"label file {lpath} has shape {y.shape} but its image {ipath} has {x.shape[:3]}")
        if np.issubdtype(y.dtype, np.floating):
            yr = np.rint(y)
            if np.abs(y - yr).max(initial=0) > 1e-3:
                raise DataError(f"label file {lpath} contains non-integer values")
            y = yr
        y = y.astype(np.int64)
        vals, cnt = np.unique(y, return_counts=True)
        bad = sorted(set(vals.tolist()) - allowed)
        if bad:
            raise DataError(f"label file {lpath} contains values {bad} outside the declared labels {sorted(allowed)}")
        counts.update(dict(zip(vals.tolist(), cnt.tolist())))
        fg = y > 0
        if not fg.any():
            fg = np.ones_like(fg)
        idx = np.flatnonzero(fg)
        pick = idx if idx.size <= SAMPLES_PER_CASE else rng.choice(idx, SAMPLES_PER_CASE, replace=False)
        for c in range(n_ch):
            samples[c].append(x[..., c].reshape(-1)[pick])
        perm, spacing, codes = _ras(img.affine)
        ras_spacing, ras_shape = [0.0] * 3, [0] * 3
        for vox_axis in range(3):
            ras_spacing[perm[vox_axis]] = float(spacing[vox_axis])
            ras_shape[perm[vox_axis]] = int(x.shape[vox_axis])
        cases.append({"id": d["id"], "shape": ras_shape, "spacing": [round(s, 5) for s in ras_spacing], "axcodes": codes})
    if not cases:
        raise DataError(f"no cases to fingerprint in {root}")
    sp = np.array([c["spacing"] for c in cases])
    sh = np.array([c["shape"] for c in cases])
    med = np.median(sp, axis=0)
    intensity = []
    for c in range(n_ch):
        v = np.concatenate(samples[c]).astype(np.float64)
        intensity.append({"mean": float(v.mean()), "std": float(v.std()), "p00_5": float(np.percentile(v, 0.5)),
                          "p99_5": float(np.percentile(v, 99.5)), "min": float(v.min()), "max": float(v.max())})
    total = sum(counts.values())
    thick = int(np.argmax(med)) if med.max() >= 2 * med.min() else None
    fp = Fingerprint(
        n_cases=len(cases), median_spacing=[float(s) for s in med], spacing_p10=[float(s) for s in np.percentile(sp, 10, axis=0)],
        median_shape=[int(round(s)) for s in np.median(sh, axis=0)], anisotropy=float(med.max() / med.min()),
        anisotropy_per_axis=[float(s / med.min()) for s in med],
        thick_axis=thick, axcodes=Counter(c["axcodes"] for c in cases).most_common(1)[0][0],
        modality=modality, labels=labels, n_classes=int(max(labels) + 1), in_channels=n_ch,
        intensity=intensity, class_fractions={int(k): counts.get(k, 0) / total for k in sorted(labels)},
        cases=cases, datalist_hash=key,
    )
    if cache_path is not None:
        Path(cache_path).parent.mkdir(parents=True, exist_ok=True)
        fp.save(cache_path)
    return fp
