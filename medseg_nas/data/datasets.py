"""Datasets of one split: cached training patches, whole preprocessed val/test volumes."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import torch
from monai.data import CacheDataset, PersistentDataset

from medseg_nas.errors import DataError

from medseg_nas.data.transforms import preprocess_transforms, train_transforms

_MEMO: "OrderedDict[str, DataBundle]" = OrderedDict()  # bundles reused by later trials in this process
_MEMO_SIZE = 2


class _FirstSample:
    """RandCropByPosNegLabeld returns a list of num_samples=1 dicts: yield the dict itself."""

    def _transform(self, index):  # type: ignore[override]
        out = super()._transform(index)  # type: ignore[misc]
        return out[0] if isinstance(out, list) and len(out) == 1 else out


class PatchCacheDataset(_FirstSample, CacheDataset):
    """In-memory cache of the deterministic preprocessing; random patch + augmentation per item."""


class PatchPersistentDataset(_FirstSample, PersistentDataset):
    """Same, cached on disk (`cache_dir`) so other processes (Ray workers, resumed runs) reuse it."""


@dataclass
class DataBundle:
    train: torch.utils.data.Dataset  # dicts image C×patch, label 1×patch (random patch per access)
    val: torch.utils.data.Dataset  # whole preprocessed volumes image C×X×Y×Z, label 1×X×Y×Z
    test: torch.utils.data.Dataset
    plan: object
    ids: dict = field(default_factory=dict)  # {"train": [...], "val": [...], "test": [...]}

    def reseed(self, seed: int) -> None:
        """Reset every random transform of the training pipeline: same seed → same patches
        (in the main process; DataLoader workers derive their seeds from torch's seed)."""
        self.train.transform.set_random_state(seed=int(seed) % (2**32))

    def train_loader(self, batch_size: int, num_samples: int, seed: int = 0, num_workers: int = 0):
        """`num_samples` random patches per pass (with replacement), reproducible for `seed`."""
        from monai.data import DataLoader  # re-seeds the random transforms in each worker

        g = torch.Generator().manual_seed(int(seed))
        sampler = torch.utils.data.RandomSampler(self.train, replacement=True, num_samples=int(num_samples), generator=g)
        return DataLoader(self.train, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                          drop_last=False, persistent_workers=num_workers > 0)


def _file_key(d: dict) -> list:
    out = [d["id"]]
    for key in ("image", "label"):
        p = Path(d[key])
        st = p.stat() if p.is_file() else None
        out += [str(p), st.st_size if st else -1, st.st_mtime_ns if st else -1]
    return out


def _cached(data, transform, data_cfg, cache_dir, kind, plan_key, cls_mem=CacheDataset, cls_disk=PersistentDataset):
    if not data:
        return cls_mem(data=[], transform=transform, progress=False)
    if cache_dir is not None:
        sub = Path(cache_dir) / f"{kind}_{plan_key[:12]}"
        sub.mkdir(parents=True, exist_ok=True)
        return cls_disk(data=data, transform=transform, cache_dir=sub)
    return cls_mem(data=data, transform=transform, cache_rate=float(data_cfg.cache_rate),
                   num_workers=max(1, int(data_cfg.num_workers)) if data_cfg.num_workers else 1, progress=False)


def build_datasets(datalist: list[dict], split, plan, data_cfg, cache_dir: str | Path | None = None) -> DataBundle:
    """Datasets for `split` (a `Split`) under `plan`; the same inputs in this process return the
    same (already cached) bundle, so a second trial does not re-read or re-resample volumes."""
    parts = {name: split.select(datalist, name) for name in ("train", "val", "test")}
    if not parts["train"]:
        raise DataError("the split has no training cases")
    plan_key = hashlib.sha1(json.dumps(plan.to_dict(), sort_keys=True).encode()).hexdigest()
    memo_key = hashlib.sha1(json.dumps({
        "plan": plan_key, "files": {k: [_file_key(d) for d in v] for k, v in parts.items()},
        "augment": data_cfg.augment, "pos": data_cfg.pos_fraction, "cache_rate": data_cfg.cache_rate,
        "cache_dir": str(cache_dir) if cache_dir else None,
    }, sort_keys=True).encode()).hexdigest()
    if memo_key in _MEMO:
        _MEMO.move_to_end(memo_key)
        return _MEMO[memo_key]
    strip = lambda items: [{"id": d["id"], "image": d["image"], "label": d["label"]} for d in items]  # noqa: E731
    ttf = train_transforms(plan, data_cfg.augment, data_cfg.pos_fraction)
    train = _cached(strip(parts["train"]), ttf, data_cfg, cache_dir, "train", plan_key,
                    PatchCacheDataset, PatchPersistentDataset)
    pre = preprocess_transforms(plan, with_label=True)
    val = _cached(strip(parts["val"]), pre, data_cfg, cache_dir, "eval", plan_key)
    test = _cached(strip(parts["test"]), pre, data_cfg, cache_dir, "eval", plan_key)
    bundle = DataBundle(train=train, val=val, test=test, plan=plan, ids={k: [d["id"] for d in v] for k, v in parts.items()})
    _MEMO[memo_key] = bundle
    while len(_MEMO) > _MEMO_SIZE:
        _MEMO.popitem(last=False)
    return bundle


def clear_cache() -> None:
    """Forget the in-process bundle cache (tests, or to free memory)."""
    _MEMO.clear()
