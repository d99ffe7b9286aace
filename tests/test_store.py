"""TrialStore: rows survive the writer, reruns keep their id, finished genomes are found by key."""

import sqlite3

import pytest

from medseg_nas.trial_store import TrialStore


def test_store_lifecycle(tmp_path):
    path = tmp_path / "trials.sqlite"
    with TrialStore(path) as st:
        a = st.start("k1", '{"g": 1}', seed=0, host="h")
        b = st.start("k2", '{"g": 2}', seed=0, host="h")
        assert [r.status for r in st.rows()] == ["running", "running"]
        st.finish(a, "done", f1=0.5, f2=9.0, history=[{"loss": 1.0}], seconds=1.5, n_params=8100, result={"val_dice": 0.7})
        st.finish(b, "failed", error="RuntimeError: NaN loss")
        assert st.count(("done", "failed")) == 2 and len(st) == 2
    # a second connection (e.g. after a kill) sees everything committed
    with TrialStore(path) as st:
        r = st.finished_by_key("k1")
        assert r.id == a and r.objectives == (0.5, 9.0) and r.history == [{"loss": 1.0}] and r.n_params == 8100
        assert r.result == {"val_dice": 0.7} and r.started and r.finished
        assert st.finished_by_key("k2").objectives is None
        assert st.finished_by_key("nope") is None
        assert st.get(b).error == "RuntimeError: NaN loss"
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_rerun_keeps_id_and_counts_attempts(tmp_path):
    with TrialStore(tmp_path / "t.sqlite") as st:
        tid = st.start("k", "{}", seed=3)
        assert st.running_by_key("k").id == tid
        again = st.start("k", "{}", seed=3, trial_id=tid)
        assert again == tid and st.get(tid).attempts == 2 and len(st) == 1
        st.finish(tid, "done", f1=0.1, f2=2.0)
        assert st.running_by_key("k") is None


def test_done_needs_finite_objectives(tmp_path):
    with TrialStore(tmp_path / "t.sqlite") as st:
        tid = st.start("k", "{}", seed=0)
        with pytest.raises(ValueError, match="finite"):
            st.finish(tid, "done", f1=float("nan"), f2=1.0)
        with pytest.raises(ValueError, match="status"):
            st.finish(tid, "running")
