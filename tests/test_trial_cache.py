"""The strategy benchmark's trial cache: shared by processes and sessions, first line wins."""

import json

import pytest

from medseg_nas.bench.trial_cache import TrialCache


def entry(key, f1, budget="b1"):
    return {"key": key, "budget": budget, "f1": f1}


def test_first_line_for_a_key_wins_in_every_reader(tmp_path):
    path = tmp_path / "cache.jsonl"
    a, b = TrialCache(path, "b1"), TrialCache(path, "b1")  # two worker processes
    assert a.get("g1") is None and b.get("g1") is None
    assert a.put(entry("g1", 0.5)) == (entry("g1", 0.5), True)  # a's own line holds
    held, mine = b.put(entry("g1", 0.7))  # b trained the same genome after a had written it
    assert held["f1"] == 0.5 and not mine and b.get("g1")["f1"] == 0.5
    assert len(path.read_text().splitlines()) == 1  # b's duplicate is not appended
    assert TrialCache(path, "b1").get("g1")["f1"] == 0.5  # a replay sees what both runs saw
    assert b.get("g2") is None
    a.put(entry("g2", 0.1))
    assert b.get("g2")["f1"] == 0.1  # a miss re-reads what other writers appended


def test_other_budgets_are_ignored_and_damaged_lines_skipped(tmp_path):
    path = tmp_path / "cache.jsonl"
    path.write_text(json.dumps(entry("g1", 0.9, budget="other")) + "\n" + '{"key": "g2", "bud\n'
                    + json.dumps(entry("g3", 0.3)) + "\n" + '{"key": "g4"')  # a writer killed mid-line last
    with pytest.warns(UserWarning, match="damaged line"):
        c = TrialCache(path, "b1")
    assert c.get("g1") is None and c.get("g2") is None and c.get("g3")["f1"] == 0.3 and len(c) == 1
    assert c.get("g4") is None  # the unfinished last line is not read as an entry
    with pytest.warns(UserWarning, match="damaged line"):  # the fragment, now ended, is read and skipped
        c.put(entry("g5", 0.5))  # after the killed writer's fragment, on a line of its own
    with pytest.warns(UserWarning, match="damaged line"):
        assert TrialCache(path, "b1").get("g5")["f1"] == 0.5
