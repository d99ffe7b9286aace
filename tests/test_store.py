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


def test_a_store_written_before_the_added_columns_is_migrated_once_even_when_two_processes_race(tmp_path):
    """CI stop 46: a test opened the store while the search creating it was adding `rung`, and
    both ALTERed it. The loser of that race must find the column there, not crash."""
    from medseg_nas.trial_store import ADDED_COLUMNS, add_missing_columns

    path = tmp_path / "trials.sqlite"
    db = sqlite3.connect(str(path))
    db.execute("CREATE TABLE trials (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, genome TEXT NOT NULL,"
               " status TEXT NOT NULL, f1 REAL, f2 REAL, history TEXT, error TEXT, seconds REAL, seed INTEGER,"
               " host TEXT, started TEXT, finished TEXT, n_params INTEGER, attempts INTEGER NOT NULL DEFAULT 1,"
               " result TEXT)")
    db.execute("INSERT INTO trials (key, genome, status) VALUES ('k', '{}', 'done')")
    db.commit()
    db.close()
    with TrialStore(path) as st:  # the first opener migrates the old store
        cols = {r[1] for r in st._db.execute("PRAGMA table_info(trials)")}
        assert set(ADDED_COLUMNS) <= cols
        add_missing_columns(st._write, set())  # the racer that saw every column missing
        assert [r[0] for r in st.read("SELECT key FROM trials")] == ["k"]
    with pytest.raises(sqlite3.OperationalError, match="no such table"):  # other errors still surface
        add_missing_columns(lambda sql, args: sqlite3.connect(":memory:").execute(sql, args), set())
