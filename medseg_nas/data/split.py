"""Deterministic train/val/test split (optionally k-fold over the non-test cases), saved as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from medseg_nas.errors import DataError


@dataclass
class Split:
    train: list[str]
    val: list[str]
    test: list[str]
    info: dict = field(default_factory=dict)  # seed, fractions, folds: how it was made

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "Split":
        path = Path(path)
        try:
            d = json.loads(path.read_text())
            return cls(train=list(d["train"]), val=list(d["val"]), test=list(d["test"]), info=dict(d.get("info", {})))
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(f"split file {path} is unreadable ({exc})") from None

    def check_cases(self, datalist: list[dict], source: str | Path) -> None:
        """DataError naming `source` when the split lists a case the dataset does not hold.

        A run directory reused after the dataset changed keeps its old split.json: checked once
        up front, instead of every trial failing on it.
        """
        ids = {d["id"] for d in datalist}
        missing = [(i, part) for part in ("train", "val", "test") for i in getattr(self, part) if i not in ids]
        if missing:
            case, part = missing[0]
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise DataError(f"split file {source} lists case '{case}' ({part}){more} which is not in the dataset "
                            f"({len(ids)} cases): it was made for another dataset; use a new run directory, "
                            "or point data.root back to the dataset it was made from")

    def check_searchable(self, source: str | Path) -> None:
        """DataError naming `source` unless a search can train and score on this split: at least
        one training and one validation case, and no case in two parts (a test case seen in
        training would flatter every test figure). Checked before the first trial, so a bad
        split is one error, not a budget of failed trials."""
        for part in ("train", "val"):
            if not getattr(self, part):
                raise DataError(f"split file {source} has no '{part}' cases: a search needs at least one training "
                                "and one validation case (delete it to make a new split from data.val_fraction / "
                                "data.test_fraction, or fix its lists)")
        seen: dict[str, str] = {}
        for part in ("train", "val", "test"):
            for i in getattr(self, part):
                if i in seen and seen[i] != part:
                    raise DataError(f"split file {source} lists case '{i}' in both '{seen[i]}' and '{part}'")
                seen[i] = part

    def select(self, datalist: list[dict], part: str) -> list[dict]:
        """The datalist entries of one part ("train" | "val" | "test"), in split order."""
        by_id = {d["id"]: d for d in datalist}
        missing = [i for i in getattr(self, part) if i not in by_id]
        if missing:
            raise DataError(f"split lists case '{missing[0]}' ({part}) which is not in the dataset")
        return [by_id[i] for i in getattr(self, part)]


def case_groups(datalist: list[dict]) -> dict[str, str]:
    """Case id -> the group it is split (and resampled) with: the entry's "group" (ACDC: the
    patient of an ED/ES frame pair), else the case itself."""
    return {d["id"]: str(d.get("group", d["id"])) for d in datalist}


def make_split(datalist: list[dict], seed: int = 0, val_fraction: float = 0.2, test_fraction: float = 0.2,
               n_folds: int = 0, fold: int = 0) -> Split:
    """Shuffle groups (entry "group", else the id) with `seed`; the first `test_fraction` of groups
    is the test set, the next `val_fraction` the validation set. With `n_folds` > 1 the non-test
    groups are cut into folds and fold `fold` is validation. Independent of datalist order."""
    ids = [d["id"] for d in datalist]
    groups: dict[str, list[str]] = {}
    for case, group in case_groups(datalist).items():
        groups.setdefault(group, []).append(case)
    names = sorted(groups)
    rng = np.random.default_rng(seed)
    order = [names[i] for i in rng.permutation(len(names))]
    n = len(order)
    n_test = int(round(n * test_fraction))
    if test_fraction > 0 and n >= 3:
        n_test = max(n_test, 1)
    test_g, rest = order[:n_test], order[n_test:]
    if n_folds and n_folds > 1:
        if not 0 <= fold < n_folds:
            raise DataError(f"fold {fold} is outside 0..{n_folds - 1}")
        if len(rest) < n_folds:
            raise DataError(f"{len(rest)} non-test case group(s) cannot make {n_folds} folds")
        folds = np.array_split(np.arange(len(rest)), n_folds)
        val_g = [rest[i] for i in folds[fold]]
        train_g = [g for i, g in enumerate(rest) if i not in set(folds[fold].tolist())]
    else:
        n_val = int(round(n * val_fraction))
        if val_fraction > 0 and n - n_test >= 2:
            n_val = max(n_val, 1)
        val_g, train_g = rest[:n_val], rest[n_val:]
    if not train_g:
        raise DataError(f"{len(ids)} case(s) leave no training cases after val_fraction={val_fraction}, "
                        f"test_fraction={test_fraction}")
    expand = lambda gs: [i for g in gs for i in sorted(groups[g])]  # noqa: E731
    return Split(train=expand(train_g), val=expand(val_g), test=expand(test_g),
                 info={"seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction,
                       "n_folds": n_folds, "fold": fold, "n_cases": len(ids)})
