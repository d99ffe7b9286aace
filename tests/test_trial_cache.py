"""The strategy benchmark's trial cache: shared by processes and sessions, first line wins."""

import hashlib
import json
import statistics

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


def _cache_file(path, rows, budget="b1", n_params=None):
    """A cache as bench_search writes it: each line keyed by its genome's hash (Genome.key), whatever the
    budget; `n_params`, one count per row, adds the parameter counts."""
    lines = [json.dumps({"key": hashlib.sha1(json.dumps(g).encode()).hexdigest()[:12], "budget": budget,
                         "genome": json.dumps(g), "status": "done", "f1": f1, "val_dice": vd, "seconds": 1.0,
                         **({"n_params": n_params[i]} if n_params else {})})
             for i, (g, f1, vd) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cache_agreement_matches_genomes_across_caches_and_leaves_the_untrained_out(tmp_path):
    """Two caches of one proxy (CPU and CUDA): genomes matched by their key (the genome's hash), not
    by line order; the network that learned nothing is left out of the second τ; a file of two
    budgets is refused."""
    from script_loader import load_script

    ca = load_script("cache_agreement")
    g = [{"n_f": i, "ops": ["identity"]} for i in range(5)]
    a = _cache_file(tmp_path / "a.jsonl", [(g[0], 1.5, 0.0), (g[1], 0.3, 0.8), (g[2], 0.4, 0.7), (g[3], 0.5, 0.6),
                                          (g[4], 0.2, 0.9)])
    # b: the same genomes in another order, g[4] missing, g[2] and g[3] swapped in rank
    b = _cache_file(tmp_path / "b.jsonl", [(g[3], 0.41, 0.6), (g[1], 0.31, 0.8), (g[0], 1.5, 0.0), (g[2], 0.5, 0.7)],
                    budget="b2")
    out = tmp_path / "r.json"
    assert ca.main([str(a), str(b), "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["n_common"] == 4 and doc["kendall_f1_learned_only"]["n"] == 3
    assert doc["kendall_f1"]["tau"] == pytest.approx(4 / 6, abs=1e-3)  # 6 pairs: 5 concordant, 1 discordant
    assert doc["kendall_f1_learned_only"]["tau"] == pytest.approx(1 / 3, abs=1e-3)
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(a.read_text() + b.read_text())
    with pytest.raises(SystemExit, match="holds 2 budgets"):
        ca.main([str(mixed), str(b), "--out", str(tmp_path / "m.json")])


def test_cache_fidelity_draws_learned_genomes_in_an_order_fixed_by_the_seed_not_the_file(tmp_path):
    """The draw is a random order of the genomes that learned (validation Dice > 0), fixed by the
    seed and the cache's content: the same file in another line order gives the same draw; log
    params enters tau with its own sign; a rerun with other settings is refused before training."""
    from script_loader import load_script

    cf = load_script("cache_fidelity")
    g = [{"n_f": i, "ops": ["conv3d_3"]} for i in range(12)]
    rows = [(g[0], 1.5, 0.0)] + [(gi, 0.2 + 0.01 * i, 0.8) for i, gi in enumerate(g[1:])]
    a = _cache_file(tmp_path / "a.jsonl", rows)
    b = _cache_file(tmp_path / "b.jsonl", rows[::-1])
    from medseg_nas.bench.trial_cache import finished_trials

    budget, ta = finished_trials(a)
    order = cf.draw_order(ta, 0)
    assert budget == "b1" and len(order) == 11 and set(order) == set(ta) - {next(k for k, e in ta.items() if e["f1"] == 1.5)}
    assert order == cf.draw_order(finished_trials(b)[1], 0)
    assert cf.draw_order(ta, 1) != order and sorted(order) != order  # a shuffle, another one per seed
    fresh = cf.draw_order(ta, 1, frozenset(order[:4]))
    assert len(fresh) == 7 and not set(fresh) & set(order[:4])  # --exclude: the measured genomes are out
    entries = [{"f1": 0.5 - 0.01 * i, "n_params": 1000 * (i + 1), "search_val_dice": 0.5 + 0.01 * i,
                "test_mean_dice": 0.6 + 0.01 * i} for i in range(6)]
    k = cf.kendall(entries)
    assert k["n"] == 6 and k["neg_f1"]["tau"] == 1.0 and k["log_params"]["tau"] == 1.0
    entries[0]["n_params"] = 10 ** 7  # the biggest network scores worst: size alone now misranks it
    assert cf.kendall(entries)["log_params"]["tau"] < 1.0 and cf.kendall(entries)["neg_f1"]["tau"] == 1.0
    out = tmp_path / "r.json"
    out.write_text(json.dumps({"cache": str(a), "cache_budget": "b1", "config": "c.yaml", "draw_seed": 0,
                               "budget": [8, 50], "augment": "light", "seed": 0, "entries": []}))
    with pytest.raises(SystemExit, match="was measured with"):
        cf.main([str(a), "--config", "c.yaml", "--data-root", "d", "--epochs", "4", "--out", str(out)])


def test_cache_fidelity_max_params_draws_only_what_a_capped_retrain_could_pick(tmp_path):
    """`--max-params`: the draw keeps the learned genomes at or under the cap, in an order fixed by
    the seed, and `--exclude` still takes the measured ones out."""
    from script_loader import load_script

    from medseg_nas.bench.trial_cache import finished_trials

    cf = load_script("cache_fidelity")
    path = _cache_file(tmp_path / "a.jsonl", [({"n_f": i, "ops": ["conv3d_3"]}, 0.3, 0.8) for i in range(10)],
                       n_params=[1000 * (i + 1) for i in range(10)])
    _, trials = finished_trials(path)
    capped = cf.draw_order(trials, 0, max_params=5000)
    assert sorted(trials[k]["n_params"] for k in capped) == [1000, 2000, 3000, 4000, 5000]
    assert capped == cf.draw_order(trials, 0, max_params=5000) and len(cf.draw_order(trials, 0)) == 10
    assert set(cf.draw_order(trials, 0, frozenset(capped[:2]), max_params=5000)) == set(capped[2:])


def test_cache_fidelity_stop_time_is_the_next_one_even_across_midnight():
    import datetime as dt

    from script_loader import load_script

    cf = load_script("cache_fidelity")
    utc = dt.timezone.utc
    late = dt.datetime(2026, 12, 6, 23, 10, tzinfo=utc)
    assert cf.deadline("00:35", late) == dt.datetime(2026, 12, 7, 0, 35, tzinfo=utc)
    assert cf.deadline("23:45", late) == dt.datetime(2026, 12, 6, 23, 45, tzinfo=utc)
    assert cf.deadline(None, late) is None


def test_cache_fidelity_seed_agreement_matches_genomes_by_key_and_measures_the_seed_noise(tmp_path):
    from script_loader import load_script

    cf = load_script("cache_fidelity")
    a = [{"key": f"k{i}", "f1": 0.5 - 0.01 * i, "n_params": 1000 * (i + 1), "search_val_dice": 0.5,  # constant: no τ
          "test_mean_dice": 0.80 + 0.01 * i} for i in range(6)]
    # seed 1: the same genomes in reverse line order, each 0.002 lower, k5 missing, k0 and k1 swapped in rank
    b = [{**e, "test_mean_dice": e["test_mean_dice"] - 0.002} for e in a[:5]][::-1]
    b[-1]["test_mean_dice"], b[-2]["test_mean_dice"] = b[-2]["test_mean_dice"], b[-1]["test_mean_dice"]
    out = cf.seed_agreement(a, b)
    assert out["n"] == 5
    assert out["seed_to_seed"]["ref0"]["tau"] == pytest.approx(0.8)  # 10 pairs, 1 discordant
    assert out["seed_sd"] == pytest.approx(0.005, abs=1e-4)  # diffs -0.008, +0.012, 0.002 x 3: sd 0.00707 / sqrt 2
    assert out["against_mean"]["neg_f1"]["tau"] == pytest.approx(9 / 90 ** 0.5, abs=1e-3)  # the swapped pair ties in the mean (tau-b)
    assert out["against_mean"]["search_val_dice"] == {"tau": None, "ci95": None}
    assert out["cross_seed"]["seed0_val_to_seed1_test"]["n"] == 0  # no monitor Dice in these entries: no rows
    r0 = tmp_path / "s0.json"
    r0.write_text(json.dumps({"entries": a}))
    r1 = tmp_path / "s1.json"
    r1.write_text(json.dumps({"seed": 1, "entries": b}))
    assert cf.main(["cache.jsonl", "--config", "c.yaml", "--data-root", "d", "--with-seed", str(r1), "--out", str(r0)]) == 0
    assert json.loads(r0.read_text())["seed_agreement"]["n"] == 5


def test_cache_fidelity_cross_seed_reads_one_seeds_monitor_dice_against_the_other_seeds_test_dice():
    from script_loader import load_script

    cf = load_script("cache_fidelity")
    # seed 0's monitor Dice orders seed 1's test Dice exactly, and seed 0's own test Dice the reverse way;
    # size orders seed 1 the reverse way: a reading against the wrong seed, or of size, gives -1
    a = [{"key": f"k{i}", "n_params": 1000 * (6 - i), "val_dice": 0.6 + 0.01 * i, "test_mean_dice": 0.9 - 0.01 * i,
          "f1": 0.3, "search_val_dice": 0.5} for i in range(6)]
    b = [{"key": f"k{i}", "n_params": 1000 * (6 - i), "val_dice": 0.5, "test_mean_dice": 0.7 + 0.01 * i}
         for i in range(6)]
    out = cf.cross_seed(a, b)
    assert out["n"] == 6 and out["retrain_val_dice"]["tau"] == 1.0 and out["log_params"]["tau"] == -1.0
    assert out["log_params_minus_retrain_val_dice"]["tau"] == -2.0
    assert out["log_params_minus_retrain_val_dice"]["ci95"][1] < 0
    assert cf.cross_seed(b, a)["retrain_val_dice"] == {"tau": None, "ci95": None}  # a constant monitor Dice ranks nothing
    assert cf.seed_agreement(a, b)["cross_seed"]["seed0_val_to_seed1_test"]["retrain_val_dice"]["tau"] == 1.0


def test_cache_fidelity_two_seeds_blind_keep_one_prefix_through_a_kill_and_show_no_tau_until_complete(
        tmp_path, monkeypatch, capsys):
    """A test stated at its size and run over sessions: each genome is retrained at both seeds before
    the next (a killed run leaves the seeds on the same prefix), a rerun trains only what is missing,
    and a blind record shows no τ and no test Dice, nor compares its seeds, until every drawn genome is in."""
    import numpy as np

    from medseg_nas.space import Genome
    from script_loader import load_script

    cf = load_script("cache_fidelity")
    rng = np.random.default_rng(0)
    genomes = list({g.key(): g for g in (Genome.random(rng) for _ in range(8))}.values())[:6]
    cache = tmp_path / "c.jsonl"
    cache.write_text("".join(json.dumps({"key": g.key(), "budget": "b1", "genome": g.to_json(), "status": "done",
                                         "f1": 0.5 - 0.01 * i, "f2": 10.0, "val_dice": 0.5 + 0.01 * i}) + "\n"
                             for i, g in enumerate(genomes)))
    calls = []

    def fake_retrain(cfg, genome, seed, plan, bundle, device, **budget):
        calls.append((genome.key(), seed))
        if len(calls) == 4:
            raise KeyboardInterrupt  # the session's hard cut, mid-genome
        return {"n_params": 1000 * (1 + len(calls)), "test_mean_dice": 0.7 + 0.01 * len(calls) + 0.001 * seed,
                "wall_s": 1.0}

    monkeypatch.setattr(cf, "retrain_and_score", fake_retrain)
    monkeypatch.setattr(cf, "retrain_data", lambda cfg, run_dir, seed: ("bundle", "plan"))
    monkeypatch.setattr(cf, "load_config", lambda path, overrides: None)
    args = [str(cache), "--config", "c.yaml", "--data-root", "d", "--draw", "5", "--draw-seed", "3", "--blind",
            "--seed", "0", "1", "--out", str(tmp_path / "s{seed}.json")]
    with pytest.raises(SystemExit, match="must hold"):
        cf.main([*args[:-1], str(tmp_path / "s.json")])
    with pytest.raises(KeyboardInterrupt):
        cf.main(args)
    order = cf.draw_order(cf.finished_trials(cache)[1], 3)[:5]
    assert calls == [(order[0], 0), (order[0], 1), (order[1], 0), (order[1], 1)]  # genome by genome, both seeds
    s0, s1 = (json.loads((tmp_path / f"s{s}.json").read_text()) for s in (0, 1))
    assert [e["key"] for e in s0["entries"]] == order[:2] and [e["key"] for e in s1["entries"]] == order[:1]
    assert "blind" in s0["kendall"] and "tau" not in json.dumps(s0["kendall"])
    with pytest.raises(SystemExit, match="s0.json is a blind record with 2 of 5"):
        cf.main(["c", "--config", "c", "--data-root", "d", "--with-seed", str(tmp_path / "s1.json"),
                 "--out", str(tmp_path / "s0.json")])
    capsys.readouterr()
    assert cf.main(args) == 0
    assert calls[4:] == [(order[1], 1)] + [(key, s) for key in order[2:] for s in (0, 1)]  # nothing trained twice
    printed = capsys.readouterr().out
    assert "params (1 s)" in printed and "-> test" not in printed  # blind: no test Dice per genome
    s0 = json.loads((tmp_path / "s0.json").read_text())
    assert [e["key"] for e in s0["entries"]] == order and s0["kendall"]["n"] == 5 and "neg_f1" in s0["kendall"]
    assert cf.main(["c", "--config", "c", "--data-root", "d", "--with-seed", str(tmp_path / "s1.json"),
                    "--out", str(tmp_path / "s0.json")]) == 0
    assert json.loads((tmp_path / "s0.json").read_text())["seed_agreement"]["n"] == 5
    with pytest.raises(SystemExit, match="was measured with"):  # the same records, not blind: other settings
        cf.main([a for a in args if a != "--blind"])


def test_cache_fidelity_seed_mean_ranks_against_every_seeds_mean_and_takes_seed_offsets_out_of_its_sd(tmp_path):
    from script_loader import load_script

    cf = load_script("cache_fidelity")
    # three seeds; -f1 orders the three-seed mean exactly, but seed 0 alone, or seed 0 with either other
    # seed, the reverse way: a mean that leaves a seed out does not give tau 1
    a = [{"key": f"k{i}", "f1": 0.5 - 0.01 * i, "n_params": 1000 * (6 - i), "search_val_dice": 0.5,
          "test_mean_dice": 0.80 - 0.02 * i} for i in range(6)]
    b = [{**e, "test_mean_dice": 0.70 + 0.01 * i} for i, e in enumerate(a)][::-1]  # other line order
    c = [{**e, "test_mean_dice": 0.70 + 0.015 * i} for i, e in enumerate(a) if i != 5]  # k5 failed here
    c.append({**a[5], "test_mean_dice": None})
    out = cf.seed_mean(a, b, c)
    assert out["n"] == 5 and out["seeds"] == 3
    assert out["against_mean"]["neg_f1"]["tau"] == 1.0 and out["against_mean"]["log_params"]["tau"] == -1.0
    assert out["against_mean"]["search_val_dice"] == {"tau": None, "ci95": None}
    # every seed is a straight line in i, so a genome + seed fit leaves a residual only from the slopes:
    # seed 0 falls by 0.02 a step where the mean of the three rises by 0.00167
    dice = [[0.80 - 0.02 * i, 0.70 + 0.01 * i, 0.70 + 0.015 * i] for i in range(5)]
    resid = [[x - statistics.mean(row) - statistics.mean(col) + statistics.mean(sum(dice, []))
              for x, col in zip(row, zip(*dice))] for row in dice]
    assert out["seed_sd"] == pytest.approx((sum(r * r for r in sum(resid, [])) / (4 * 2)) ** 0.5, abs=1e-4)
    shifted = [{**e, "test_mean_dice": e["test_mean_dice"] + 0.1} for e in b]  # a seed's constant offset is not noise
    assert cf.seed_mean(a, shifted, c)["seed_sd"] == out["seed_sd"]
    two = [0.10 - 0.03 * i for i in range(6)]  # seeds 0 and 1 share all six genomes
    assert cf.seed_agreement(a, b)["seed_sd"] == pytest.approx(statistics.stdev(two) / 2 ** 0.5, abs=1e-4)
    assert cf.seed_mean(a, b)["seed_sd"] == cf.seed_agreement(a, b)["seed_sd"]
    assert cf.seed_mean(a, b)["against_mean"]["neg_f1"]["tau"] == -1.0
    assert [g[0]["key"] for g in cf.paired(a, b, c)] == [f"k{i}" for i in range(5)]  # the first record's order
    assert cf.seed_mean(a, b)["against_mean"] == cf.seed_agreement(a, b)["against_mean"]  # two seeds: the same reading
    paths = []
    for seed, entries in enumerate((a, b, c)):
        paths.append(tmp_path / f"s{seed}.json")
        paths[-1].write_text(json.dumps({"seed": seed, "blind": True, "drawn": [e["key"] for e in a], "entries": entries}))
    args = ["cache.jsonl", "--config", "c.yaml", "--data-root", "d", "--mean-with", str(paths[1]), str(paths[2]),
            "--out", str(paths[0])]
    assert cf.main(args) == 0
    written = json.loads(paths[0].read_text())["seed_mean"]
    assert written["with_seeds"] == [1, 2] and written["against_mean"]["neg_f1"]["tau"] == 1.0
    with pytest.raises(SystemExit) as both:  # --with-seed would otherwise win silently
        cf.main([*args[:-2], "--with-seed", str(paths[1]), *args[-2:]])
    assert both.value.code == 2
    paths[2].write_text(json.dumps({"seed": 2, "blind": True, "drawn": [e["key"] for e in a], "entries": c[:3]}))
    with pytest.raises(SystemExit, match="s2.json is a blind record with 3 of 6"):
        cf.main(args)
