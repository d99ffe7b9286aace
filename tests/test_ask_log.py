"""The store's ask log is what a resumed search reads back: what was asked, told and pending.
strategy_state.json keeps only the strategy's own state and the point of the log it was taken at."""

import json

import pytest

from medseg_nas.ask_log import AskLog
from medseg_nas.rundir import RunDir
from medseg_nas.config import config_from_dict
from medseg_nas.testing import fake_search as fk
from medseg_nas.trial_store import TrialStore


def test_log_counts_rewind_and_fill(tmp_path):
    with TrialStore(tmp_path / "t.sqlite") as st:
        log = AskLog(st)
        seqs = [log.ask(js) for js in ("a", "b", "a", "c")]
        assert seqs == [1, 2, 3, 4] and log.n_pending() == 4
        log.tell(2, (0.5, 1.0))
        log.tell(1, None)  # a failed trial
        log.tell(3, (0.25, 2.0))
        assert log.history() == [["b", 0.5, 1.0], ["a", None, None], ["a", 0.25, 2.0]]
        assert log.pending() == [(4, "c")]
        log.rewind(n_asked=3, n_told=2)  # the state was saved after the second tell, before "c"
        assert log.history() == [["b", 0.5, 1.0], ["a", None, None]] and log.pending() == [(3, "a")]
        log.fill([["x", 0.1, 0.2]], ["y"])
        assert log.history() == [["x", 0.1, 0.2]] and log.pending() == [(2, "y")]


@pytest.mark.parametrize("name", ["samea", "dmls"])
def test_asks_after_the_last_save_are_forgotten_on_resume(tmp_path, name):
    """A kill between an ask (or a tell) and the state's save leaves the log ahead of the state;
    the resumed search rewinds it and ends on the uninterrupted front, with one row per ask."""
    ref = fk.run_named(str(tmp_path / "ref"), name, budget=10)
    run = tmp_path / "r"
    fk.run_named(str(run), name, budget=6)
    with TrialStore(run / "trials.sqlite") as st:
        log = AskLog(st)
        log.tell(log.ask(log.history()[0][0]), (0.9, 0.9))  # written after the save, then killed
        log.ask(log.history()[1][0])
    s = fk.run_named(str(run), name, budget=10, resume=True)
    assert fk.front_of(s) == fk.front_of(ref)
    with TrialStore(run / "trials.sqlite") as st, TrialStore(tmp_path / "ref" / "trials.sqlite") as rst:
        assert AskLog(st).history() == AskLog(rst).history()


def test_a_format_1_state_resumes_and_is_rewritten(tmp_path):
    """A run directory written before the ask log existed (history and pending in the file)."""
    ref = fk.run_named(str(tmp_path / "ref"), "samea", budget=10)
    run = tmp_path / "r"
    fk.run_named(str(run), "samea", budget=6)
    path = run / "strategy_state.json"
    state = json.loads(path.read_text())
    with TrialStore(run / "trials.sqlite") as st:
        log = AskLog(st)
        state["state"]["history"] = log.history()
        state["state"]["pending"] = [js for _, js in log.pending()]
        old = {"format": "medseg-nas/strategy-state/1", "strategy": state["strategy"], "state": state["state"],
               "pending": state["state"]["pending"], "n_told": state["n_told"], "elapsed_s": state["elapsed_s"]}
        st.write("DROP TABLE asks")
    path.write_text(json.dumps(old))
    s = fk.run_named(str(run), "samea", budget=10, resume=True)
    assert fk.front_of(s) == fk.front_of(ref)
    new = json.loads(path.read_text())
    assert new["format"].endswith("/2") and "history" not in new["state"] and new["n_told"] == new["n_asked"]


def test_search_complete_reads_pending_asks_from_the_store(tmp_path):
    run = tmp_path / "r"
    fk.run_named(str(run), "random", budget=4)
    cfg = config_from_dict(fk.TINY_CONFIG, overrides=["search.budget_trials=4"])
    assert RunDir(run).search_complete(cfg)
    with TrialStore(run / "trials.sqlite") as st:
        AskLog(st).ask('{"pending": true}')
    assert not RunDir(run).search_complete(cfg)
