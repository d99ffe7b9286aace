"""make_split / Split: deterministic, disjoint, complete, k-fold, groups kept together."""

import pytest

from medseg_nas.data import Split, make_split
from medseg_nas.errors import DataError


def _dl(n, groups=False):
    return [{"id": f"c{i:02d}", "image": "", "label": "", **({"group": f"p{i // 2}"} if groups else {})} for i in range(n)]


def test_deterministic_disjoint_complete():
    dl = _dl(20)
    a, b = make_split(dl, seed=3), make_split(dl, seed=3)
    assert (a.train, a.val, a.test) == (b.train, b.val, b.test)
    assert len(a.test) == 4 and len(a.val) == 4 and len(a.train) == 12
    assert sorted(a.train + a.val + a.test) == sorted(d["id"] for d in dl)
    c = make_split(dl, seed=4)
    assert (c.train, c.val, c.test) != (a.train, a.val, a.test)


def test_independent_of_datalist_order():
    dl = _dl(15)
    a = make_split(dl, seed=0)
    b = make_split(list(reversed(dl)), seed=0)
    assert (sorted(a.train), sorted(a.val), a.test) == (sorted(b.train), sorted(b.val), b.test)


def test_kfold_covers_non_test_once():
    dl = _dl(17)
    folds = [make_split(dl, seed=1, val_fraction=0.2, test_fraction=0.2, n_folds=4, fold=k) for k in range(4)]
    tests = {tuple(f.test) for f in folds}
    assert len(tests) == 1  # the test set is fixed across folds
    vals = [i for f in folds for i in f.val]
    non_test = sorted(set(d["id"] for d in dl) - set(folds[0].test))
    assert sorted(vals) == non_test
    for f in folds:
        assert not set(f.val) & set(f.train)
    with pytest.raises(DataError, match="fold 4"):
        make_split(dl, n_folds=4, fold=4)


def test_groups_stay_together():
    dl = _dl(20, groups=True)  # ACDC-like: ED and ES of one patient
    s = make_split(dl, seed=0)
    for part in (s.train, s.val, s.test):
        pats = {int(i[1:]) // 2 for i in part}
        for other in (s.train, s.val, s.test):
            if other is not part:
                assert not pats & {int(i[1:]) // 2 for i in other}


def test_save_load_roundtrip(tmp_path):
    s = make_split(_dl(10), seed=2)
    s.save(tmp_path / "split.json")
    t = Split.load(tmp_path / "split.json")
    assert (t.train, t.val, t.test, t.info) == (s.train, s.val, s.test, s.info)
    (tmp_path / "bad.json").write_text("[")
    with pytest.raises(DataError, match="bad.json"):
        Split.load(tmp_path / "bad.json")


def test_too_few_cases():
    with pytest.raises(DataError, match="no training cases"):
        make_split(_dl(2), val_fraction=0.5, test_fraction=0.45)
    s = make_split(_dl(1), val_fraction=0.2, test_fraction=0.2)
    assert s.train == ["c00"]
