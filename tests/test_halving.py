"""Successive halving: config, the MO-ASHA promotion rule, the runner's rungs (with a fake trial
that records what it trained), kill -9 during a promoted trial, unusable state files, and one
real tiny search whose promoted trials go on training from their saved state."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medseg_nas.config import FidelityConfig, config_from_dict, fidelity_rungs
from medseg_nas.errors import ConfigError
from medseg_nas.nas.halving import Halving
from medseg_nas.nas.runner import run_search
from medseg_nas.trial_store import TrialStore
from medseg_nas.space.genome import Genome, SearchSpace
from medseg_nas.testing import fake_search as fk
from medseg_nas.testing.fake_trials import rung_trial

HALVING = {"kind": "halving", "eta": 2, "rungs": [1, 2, 4]}


def _cfg(fidelity=HALVING, **search):
    d = json.loads(json.dumps(fk.TINY_CONFIG))
    d["search"].update(search, fidelity=fidelity)
    return config_from_dict(d)


def run_halving(run_dir, resume=False, budget=8):
    """A halving search with the tiny random strategy and `rung_trial` (also run from a subprocess)."""
    cfg = _cfg()
    strategy = fk.TinyRandomStrategy(SearchSpace.from_config(cfg.space), seed=0)
    s = run_search(cfg, run_dir, resume=resume, strategy=strategy, budget=budget, trial_fn=rung_trial, progress=False)
    return s, strategy


def calls(run):
    return [json.loads(line) for line in (Path(run) / "calls.jsonl").read_text().splitlines()]


def test_fidelity_config():
    assert fidelity_rungs(FidelityConfig("none"), 4) == [4]
    assert fidelity_rungs(FidelityConfig("halving", 3), 4) == [1, 4]
    assert fidelity_rungs(FidelityConfig("halving", 3), 27) == [1, 3, 9, 27]
    assert fidelity_rungs(FidelityConfig("halving", 2, [1, 3, 4]), 4) == [1, 3, 4]
    for fid, match in [({"kind": "halve"}, "unknown kind 'halve'; did you mean 'halving'"),
                       ({"kind": "halving", "eta": 1}, "eta.* must be >= 2"),
                       ({"kind": "halving", "rungs": [1, 2]}, r"up to train.epochs \(4\)"),
                       ({"kind": "halving", "rungs": [2, 1, 4]}, "must be increasing"),
                       ({"kind": "halving", "eta": 5}, "at least two rungs")]:
        with pytest.raises(ConfigError, match=match):
            _cfg(fidelity=fid)


def test_promotion_is_mo_asha():
    h = Halving((1, 2, 4), eta=3)
    assert h.promotable([(1, 0.5, 1.0), (2, 0.4, 2.0)]) == []  # fewer than eta results: nobody yet
    # of 6 results the best 2 by non-dominated sorting: 3 and 5 dominate everything else
    res = [(1, 0.6, 3.0), (2, 0.5, 2.5), (3, 0.2, 1.0), (4, 0.7, 1.5), (5, 0.1, 2.0), (6, 0.3, 2.2)]
    assert sorted(h.promotable(res)) == [3, 5]
    # the first front is bigger than the quota: the crowding distance keeps its extremes
    res = [(1, 0.1, 4.0), (2, 0.2, 3.0), (3, 0.3, 2.0), (4, 0.4, 1.0), (5, 0.9, 5.0), (6, 0.8, 4.5)]
    assert sorted(h.promotable(res)) == [1, 4]


def _promotions(h, store):
    out = []
    while (p := h.next_promotion(store, busy=set(out))) is not None:
        out.append(p.trial_id)
    return out


def test_pickable_promotion_spends_the_slots_on_trials_the_retrain_could_pick(tmp_path):
    """`promote: pickable`: the quota is still floor(n / eta) of all trials at the rung, but the
    identity network (val Dice 0) and networks above retrain.max_params are never promoted."""
    # id: (f1 at rung 0, parameters, val Dice); cap 500 k
    trials = {1: (1.25, 10, 0.0), 2: (0.50, 2_000_000, 0.6), 3: (0.55, 900_000, 0.55), 4: (0.80, 300_000, 0.3),
              5: (0.70, 400_000, 0.35), 6: (0.90, 100_000, 0.2), 7: (0.95, 200_000, 0.1), 8: (1.00, 450_000, 0.05),
              9: (0.85, 480_000, 0.25)}
    with TrialStore(tmp_path / "trials.sqlite") as st:
        for tid, (f1, n, dice) in trials.items():
            assert st.start(f"k{tid}", "{}", 0) == tid
            st.finish(tid, "done", f1=f1, f2=math.log(n), n_params=n)
            st.start_rung(tid, 0, 1)
            st.finish_rung(tid, 0, "done", f1=f1, val_dice=dice)
        everyone = _promotions(Halving((1, 4), eta=3), st)
        assert len(everyone) == 3 and 1 in everyone and 2 in everyone  # the published rule: the front's ends
        cfg = _cfg(fidelity={"kind": "halving", "eta": 3, "rungs": [1, 4], "promote": "pickable"})
        cfg.retrain.max_params = 500_000
        h = Halving.of(cfg)
        assert h.pickable_only and dict(h.caps)["max_params"] == 500_000
        picked = _promotions(h, st)
        assert len(picked) == 3 and not {1, 2, 3} & set(picked)
        assert set(picked) == {4, 5, 6}  # the first front of the pickable trials (7, 8, 9 are dominated)
    with pytest.raises(ConfigError, match="unknown promote 'pickabel'; did you mean 'pickable'"):
        _cfg(fidelity={"kind": "halving", "promote": "pickabel"})


def test_halving_search_promotes_and_continues(tmp_path):
    run = tmp_path / "r"
    s, strategy = run_halving(run)
    assert s.n_trials == 8 and s.n_done == 8
    with TrialStore(run / "trials.sqlite") as st:
        rungs, trials = st.rung_rows(), {r.id: r for r in st.rows()}
    by_rung = [sum(r.rung == i and r.status == "done" for r in rungs) for i in range(3)]
    assert by_rung[0] == 8 and 4 <= by_rung[1] < 8 and 2 <= by_rung[2] <= by_rung[1]
    seen = [(c["trial"], c["rung"]) for c in calls(run)]
    assert len(seen) == len(set(seen)) == len(rungs)  # nothing trained twice
    for c in calls(run):  # a promoted trial went on from the epochs of the rung below
        assert c["from"] == ([0, 1, 2][c["rung"]]) and c["until"] == [1, 2, 4][c["rung"]]
    for tid, t in trials.items():  # the trial row carries its highest rung
        top = max((r for r in rungs if r.trial_id == tid and r.status == "done"), key=lambda r: r.rung)
        assert t.rung == top.rung and t.f1 == pytest.approx(top.f1)
        assert (t.result or {}).get("epochs_run") == [1, 2, 4][top.rung]
    # the strategy was told the first rung's objectives, and only those
    first = {r.trial_id: r.f1 for r in rungs if r.rung == 0}
    key_to_id = {t.key: tid for tid, t in trials.items()}
    assert len(strategy.told) == 8
    for genome, obj in strategy.told:
        assert obj[0] == pytest.approx(first[key_to_id[Genome.from_json(genome).key()]])
    front = json.loads((run / "front.json").read_text())
    assert front["fidelity"] == {"kind": "halving", "eta": 2, "rungs": [1, 2, 4], "trials_per_rung": by_rung}
    assert all(e["rung"] == trials[e["id"]].rung and e["epochs"] for e in front["front"])
    # states of trials that went on are removed; the top rung saves none
    assert not list((run / "trial_states").glob("*_rung2.pt"))


def test_two_worker_processes_promote_without_a_rung_barrier(tmp_path, monkeypatch):
    """ASHA with several workers (issue 28): a promotion is started while first-rung trials of later
    genomes are still to come (no wait for a whole rung), and a promoted trial continues in whichever
    worker process gets it from the state another process saved."""
    monkeypatch.setenv("FAKE_TRIAL_SECONDS", "0.2")  # read by rung_trial in the worker processes
    cfg = config_from_dict(json.loads(json.dumps(fk.TINY_CONFIG)),
                           overrides=["search.fidelity.kind=halving", "search.fidelity.eta=2",
                                      "search.fidelity.rungs=[1,2,4]", "executor.workers=2"])
    run = tmp_path / "r"
    strategy = fk.TinyRandomStrategy(SearchSpace.from_config(cfg.space), seed=0)
    s = run_search(cfg, run, strategy=strategy, budget=8, trial_fn=rung_trial, progress=False)
    assert s.n_done == 8
    with TrialStore(run / "trials.sqlite") as st:
        rungs = st.rung_rows()
    seen = calls(run)
    order = [c["rung"] for c in seen]
    assert order.count(0) == 8 and 1 in order
    assert order.index(1) < len(order) - 1 - order[::-1].index(0)  # promoted before the last genome started
    assert len({(c["trial"], c["rung"]) for c in seen}) == len(seen) == len(rungs)  # nothing trained twice
    for c in seen:
        assert c["from"] == [0, 1, 2][c["rung"]] and c["until"] == [1, 2, 4][c["rung"]]
    assert all(r.status == "done" for r in rungs)


def test_kill_9_during_a_promoted_trial_then_resume(tmp_path):
    ref, _ = run_halving(tmp_path / "ref")
    env = dict(os.environ, FAKE_TRIAL_SECONDS="0.6")
    code = "import sys, tests.test_halving as t; t.run_halving(sys.argv[1])"
    killed_at = None
    for attempt in range(3):  # a loaded machine can let the promotion finish between seeing it and the kill
        run = tmp_path / f"killed{attempt}"
        p = subprocess.Popen([sys.executable, "-c", code, str(run)], env=env, cwd=str(Path(__file__).parents[1]))
        deadline = time.time() + 120
        while p.poll() is None and time.time() < deadline:
            if (run / "trials.sqlite").exists():
                with TrialStore(run / "trials.sqlite") as st:
                    live = [r for r in st.rung_rows("running") if r.rung > 0]
                if live:
                    time.sleep(0.1)
                    break
            time.sleep(0.05)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        # what the kill interrupted, as the store recorded it
        with TrialStore(run / "trials.sqlite") as st:
            live = [r for r in st.rung_rows("running") if r.rung > 0]
        if live:
            killed_at = (live[0].trial_id, live[0].rung)
            break
    assert killed_at is not None, "no promoted trial was running when the search was killed"
    before = calls(run)
    s, _ = run_halving(run, resume=True)
    after = calls(run)[len(before):]
    # the killed promotion ran again from its saved state; nothing that had finished ran again
    assert after[0] == {"trial": killed_at[0], "rung": killed_at[1], "from": [1, 2, 4][killed_at[1] - 1],
                        "until": [1, 2, 4][killed_at[1]]}
    assert not {(c["trial"], c["rung"]) for c in after[1:]} & {(c["trial"], c["rung"]) for c in before}
    assert s.n_trials == 8 and fk.front_of(s) == fk.front_of(ref)
    with TrialStore(run / "trials.sqlite") as st:
        assert all(r.status == "done" for r in st.rung_rows())


def test_an_unusable_state_restarts_the_trial_at_its_rung(tmp_path, capsys):
    from medseg_nas.nas.executors import TrialSpec
    from medseg_nas.nas.trial import continued_state
    from medseg_nas.config import TrainConfig

    g = Genome(inputs=(0, 1, 2), ops=("conv3d_3", "conv2d_3", "identity", "identity"), n_c=2, n_f=3, lr=3e-3)
    (tmp_path / "bad.pt").write_bytes(b"PK\x03\x04 truncated")
    for path in (tmp_path / "bad.pt", tmp_path / "missing.pt"):
        spec = TrialSpec(7, g.to_json(), 0, str(tmp_path), {}, rung=1, until=2, state_in=str(path))
        state, note = continued_state(spec, g, TrainConfig(epochs=4))
        assert state is None and note.startswith("restarted at rung 1")
        assert f"warning: trial 7: restarted at rung 1" in capsys.readouterr().err


@pytest.mark.slow
def test_a_real_halving_search_continues_trained_networks(tmp_path):
    from data_prep import synthetic

    synthetic.generate(tmp_path / "data", cases=5, seed=0)
    d = json.loads(json.dumps(fk.TINY_CONFIG))
    d["data"] = {"root": str(tmp_path / "data"), "patch_size": [32, 32, 8], "augment": "none"}
    d["train"] = {"epochs": 2, "iters_per_epoch": 2, "batch_size": 1}
    d["search"]["fidelity"] = {"kind": "halving", "eta": 2, "rungs": [1, 2]}
    cfg = config_from_dict(d)
    s = run_search(cfg, tmp_path / "r", strategy=fk.TinyRandomStrategy(SearchSpace.from_config(cfg.space)),
                   budget=4, progress=False)
    assert s.n_done == 4
    with TrialStore(tmp_path / "r" / "trials.sqlite") as st:
        promoted = [r for r in st.rung_rows("done") if r.rung == 1]
        rows = {r.id: r for r in st.rows()}
    assert len(promoted) >= 2
    for r in promoted:  # two epochs in the history: the first rung's one was kept, one more trained
        t = rows[r.trial_id]
        assert len(t.history) == 2 and t.result["timing"]["steps"] == 2 and t.rung == 1
        assert t.history[0]["val_dice"] is not None and t.macs  # the costs came from the first rung


def test_a_repeated_genome_is_told_its_first_rung(tmp_path):
    """The store answers a re-asked genome with the same first-rung objectives the strategy was
    told when it was trained, though the trial row now holds a higher rung."""
    cfg = _cfg()
    strategy = fk.TinyRandomStrategy(SearchSpace.from_config(cfg.space), seed=0, repeat=3)
    s = run_search(cfg, tmp_path / "r", strategy=strategy, budget=8, trial_fn=rung_trial, progress=False)
    assert s.n_cached > 0
    told: dict = {}
    for genome, obj in strategy.told:
        told.setdefault(genome, set()).add(tuple(round(v, 9) for v in obj))
    assert all(len(v) == 1 for v in told.values())


def test_the_wall_clock_budget_stops_promotions(tmp_path, monkeypatch):
    from datetime import datetime

    monkeypatch.setenv("FAKE_TRIAL_SECONDS", "0.4")
    cfg = _cfg(budget_hours=1.5 / 3600)
    strategy = fk.TinyRandomStrategy(SearchSpace.from_config(cfg.space), seed=0)
    t0 = time.time()
    s = run_search(cfg, tmp_path / "r", strategy=strategy, budget=50, trial_fn=rung_trial, progress=False)
    assert s.stop_reason == "time" and 0 < s.n_trials < 50
    with TrialStore(tmp_path / "r" / "trials.sqlite") as st:
        rungs = st.rung_rows()
    assert rungs and all(r.status != "running" for r in rungs)
    # nothing was started after the clock ran out (the trial in flight then was let finish)
    assert max(datetime.fromisoformat(r.started).timestamp() for r in rungs) <= t0 + 1.5 + 0.2
    assert json.loads((tmp_path / "r" / "front.json").read_text())["front"]


def test_a_search_saved_before_the_fidelity_key_resumes_only_without_halving(tmp_path):
    import yaml

    from medseg_nas.errors import SearchError
    from medseg_nas.nas.resume import check_resume_config

    cfg = _cfg(fidelity={"kind": "none"})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(json.loads(json.dumps(
        {**fk.TINY_CONFIG, "search": {k: v for k, v in fk.TINY_CONFIG["search"].items()}}))))
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert "fidelity" not in saved["search"] and "cost" not in saved.get("objectives", {})
    check_resume_config(tmp_path, cfg)  # the old run trained every trial fully: resumable as it was
    with pytest.raises(SearchError, match="search.fidelity.kind: None -> 'halving'"):
        check_resume_config(tmp_path, _cfg())


def test_halving_study_compares_searches_in_one_box(tmp_path):
    import math

    from script_loader import load_script

    run_halving(tmp_path / "h")
    plain = _cfg(fidelity={"kind": "none"})
    run_search(plain, tmp_path / "p", strategy=fk.TinyRandomStrategy(SearchSpace.from_config(plain.space)), budget=4,
               trial_fn=rung_trial, progress=False)
    with TrialStore(tmp_path / "p" / "trials.sqlite") as st:
        trials = [{"id": r.id, "f1": r.f1, "n_params": round(math.exp(r.f2)), "seconds": 10.0} for r in st.rows()]
    (tmp_path / "rec.json").write_text(json.dumps({"trials": trials}))
    out = tmp_path / "study.json"
    study = load_script("halving_study")
    assert study.main(["--run", f"halving={tmp_path / 'h'}", "--run", f"plain={tmp_path / 'p'}",
                       "--record", f"rec={tmp_path / 'rec.json'}@25", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())["searches"]
    h, p, rec = doc["halving"], doc["plain"], doc["rec"]
    assert h["genomes"] == 8 and h["trials_per_rung"][0] == 8 and h["top_rung"] == h["trials_per_rung"][2]
    assert h["promotions_done"] == sum(h["trials_per_rung"][1:])
    assert 0 < h["hv_top_rung_only"] <= h["hv_highest_rung"]
    assert p["genomes"] == p["top_rung"] == 4 and p["hv_top_rung_only"] == p["hv_highest_rung"]
    with TrialStore(tmp_path / "h" / "trials.sqlite") as st:  # top-rung trials the retrain's pick could use
        seg = {r.trial_id for r in st.rung_rows("done") if r.rung == 0 and (r.val_dice or 0) > 0}
        top = [r for r in st.rows() if r.rung == 2]
    assert h["promote"] == "all" and h["top_rung_pickable"] == sum(r.id in seg for r in top) and p["top_rung_pickable"] is None
    from medseg_nas.stages.retrain import pick_trial

    for run, d in ((h, "h"), (p, "p")):  # the record keeps what a retrain needs: every trial and its pick
        assert len(run["trials"]) == run["genomes"] and all(t["genome"] for t in run["trials"])
        with TrialStore(tmp_path / d / "trials.sqlite") as st:
            chosen, _ = pick_trial(st.rows(), run["pick"]["retrain_pick"])  # what `medseg-nas retrain` picks
        assert run["pick"]["trial_id"] == chosen.id and run["pick"]["genome"] == chosen.genome
        assert run["pick"]["rung"] == next(t["rung"] for t in run["trials"] if t["id"] == chosen.id)
    assert rec["genomes"] == 2 and rec["trial_seconds"] == 20.0  # cut at 25 s of 10 s trials
    assert rec["hv_highest_rung"] <= p["hv_highest_rung"] + 1e-12  # two of the plain search's four trials


@pytest.mark.parametrize("strategy", ["samea", "dmls", "nsga2", "random"])
def test_every_strategy_searches_with_halving(tmp_path, strategy):
    cfg = config_from_dict(fk.TINY_CONFIG, overrides=[f"search.strategy={strategy}", *fk.STRATEGY_OVERRIDES,
                                                      "search.fidelity.kind=halving", "search.fidelity.eta=2"])
    s = run_search(cfg, tmp_path / "r", budget=10, trial_fn=rung_trial, progress=False)
    assert s.n_trials == 10 and s.n_done == 10
    with TrialStore(tmp_path / "r" / "trials.sqlite") as st:
        done = st.rung_rows("done")
    assert sum(r.rung == 0 for r in done) == 10 and any(r.rung == 2 for r in done)  # rungs [1, 2, 4]


def test_halving_study_picks_arm_pairs_cases_and_applies_rule_3(tmp_path):
    """Rule (3): arms of retrained picks, paired per case against the plain arm; an arm well below
    fails, one level with it passes, and runs of several records pool into one arm."""
    from script_loader import load_script

    study = load_script("halving_study")
    cases = [f"c{i}" for i in range(12)]
    rng = __import__("numpy").random.default_rng(0)
    base = {c: 0.85 + 0.05 * rng.random() for c in cases}

    def record(path, seeds_shift):
        runs = [{"seed": s, "per_case_dice": {c: {"A": base[c] + d, "mean": base[c] + d} for c in cases}}
                for s, d in seeds_shift]
        path.write_text(json.dumps({"results": {"nas_pick": {"runs": runs}}}))
        return str(path)

    plain = record(tmp_path / "plain.json", [(0, 0.0), (1, 0.002), (2, -0.002)])
    level = [record(tmp_path / f"h{s}.json", [(0, d)]) for s, d in ((0, 0.001), (1, -0.001), (2, 0.0))]
    worse = [record(tmp_path / f"w{s}.json", [(0, -0.03)]) for s in range(3)]
    doc = study.picks_study({"plain": [plain], "level": level, "worse": worse}, "plain")
    assert doc["arms"]["plain"]["runs"] == 3 and doc["arms"]["level"]["runs"] == 3  # three records, one run each
    assert doc["paired"]["level-plain"]["passes_rule_3"] and doc["paired"]["level-plain"]["mean"]["n_cases"] == 12
    assert not doc["paired"]["worse-plain"]["passes_rule_3"]
    assert doc["paired"]["worse-plain"]["mean"]["mean"] == pytest.approx(-0.03, abs=1e-4)
    one = study.picks_study({"plain": [plain], "one": [f"{plain}@1"]}, "plain")  # RECORD@SEED: that run only
    assert one["arms"]["one"]["runs"] == 1 and one["arms"]["one"]["test_mean_dice_per_run"] == \
        [round(sum(base.values()) / 12 + 0.002, 4)]
    with pytest.raises(SystemExit, match="no finished nas_pick run with seed 5"):
        study.picks_study({"plain": [plain], "x": [f"{plain}@5"]}, "plain")


def test_halving_study_times_the_same_work_in_two_runs_and_states_target_2(tmp_path):
    """`--speed` compares only units trained alike (same trial, rung, genome): a run made twice as slow
    reads 2.0, a changed genome drops its units; `--twins` divides genome rates per pair and as means."""
    import sqlite3

    from script_loader import load_script

    study = load_script("halving_study")
    for d in ("a", "b"):
        run_halving(tmp_path / d)
    with TrialStore(tmp_path / "a" / "trials.sqlite") as st:
        n_units = len(st.rung_rows("done"))
        changed = sum(r.trial_id == 3 for r in st.rung_rows("done"))
    same = study.same_work(tmp_path / "a", tmp_path / "b")
    assert same["units"] == same["same_f1"] == n_units > 8  # 8 genomes, some promoted
    for d, sql in (("a", "UPDATE rungs SET seconds = 2 * (1 + rung)"), ("b", "UPDATE rungs SET seconds = 1 + rung")):
        db = sqlite3.connect(tmp_path / d / "trials.sqlite")  # the fake trial takes ~0 s: give it a clock
        db.execute(sql)
        db.commit()
    db = sqlite3.connect(tmp_path / "b" / "trials.sqlite")
    db.execute("UPDATE trials SET genome = ? WHERE id = 3", (json.dumps({"changed": True}),))
    db.commit()
    slow = study.same_work(tmp_path / "a", tmp_path / "b")
    assert slow["units"] == n_units - changed and slow["ratio_a_over_b"] == 2.0
    searches = {"h0": {"genomes_per_hour": 120.0}, "p0": {"genomes_per_hour": 40.0},
                "h1": {"genomes_per_hour": 100.0}, "p1": {"genomes_per_hour": 40.0}}
    t2 = study.target_2(searches, [("h0", "p0"), ("h1", "p1")])
    assert [p["ratio"] for p in t2["pairs"]] == [3.0, 2.5] and t2["ratio_of_means"] == 2.75 and not t2["met"]
    assert study.target_2(searches, [("h0", "p0")])["met"]
    with pytest.raises(SystemExit, match="unknown: nope"):
        study.main(["--run", f"a={tmp_path / 'a'}", "--twins", "a:nope", "--out", str(tmp_path / "x.json")])
    (tmp_path / "rec.json").write_text(json.dumps({"trials": []}))
    with pytest.raises(SystemExit, match="unknown: rec"):  # a --record search has no run directory to pair
        study.main(["--run", f"a={tmp_path / 'a'}", "--record", f"rec={tmp_path / 'rec.json'}@10", "--twins", "a:rec",
                    "--out", str(tmp_path / "x.json")])


def test_halving_study_costs_a_genome_the_same_in_both_arms(tmp_path):
    """`same_genomes` pairs a genome's first rung with its whole plain trial by genome, not by id."""
    import sqlite3

    from script_loader import load_script

    from medseg_nas.stages.retrain import trial_params

    study = load_script("halving_study")
    run_halving(tmp_path / "h")
    plain = _cfg(fidelity={"kind": "none"})
    run_search(plain, tmp_path / "p", strategy=fk.TinyRandomStrategy(SearchSpace.from_config(plain.space), seed=0),
               budget=4, trial_fn=rung_trial, progress=False)
    for d, sql in (("h", "UPDATE rungs SET seconds = 10 WHERE rung = 0"), ("p", "UPDATE trials SET seconds = 40")):
        db = sqlite3.connect(tmp_path / d / "trials.sqlite")
        db.execute(sql)
        db.commit()
    with TrialStore(tmp_path / "h" / "trials.sqlite") as st:
        first = {json.dumps(r.genome, sort_keys=True) for r in st.rows()}
    with TrialStore(tmp_path / "p" / "trials.sqlite") as st:
        shared = sum(json.dumps(r.genome, sort_keys=True) in first for r in st.rows())
        params = [trial_params(r) for r in st.rows()]
    same = study.same_genomes(tmp_path / "h", tmp_path / "p")
    assert same["genomes"] == shared >= 1 and same["plain_over_first_rung"] == 4.0
    assert study.mean_params(tmp_path / "p") == round(sum(params) / len(params))
