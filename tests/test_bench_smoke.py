"""Smoke tests of the benchmark scripts in their tiny modes (seconds): they run, write what
docs/studies/*.md read, and the search benchmark's training cache answers a repeat run.
The benchmarks themselves (minutes to hours) are not run by CI."""

import json

import numpy as np
import pytest
from script_loader import SCRIPTS, load_script

_load = load_script


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from data_prep import synthetic

    root = tmp_path_factory.mktemp("bench") / "synthetic"
    synthetic.generate(root, cases=6, seed=0)
    return root


def test_bench_search_analytic(tmp_path):
    bs = _load("bench_search")
    out = tmp_path / "search.json"
    variants = bs.DEFAULT_VARIANTS + ",dmls_k3=dmls:search.dmls.initial_archive_size=3"
    assert bs.main(["--mode", "analytic", "--seeds", "0-1", "--budget", "10", "--work-dir", str(tmp_path / "w"),
                    "--variants", variants, "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    per = doc["summary"]["per_strategy"]
    labels = ["samea", "samea_adaptive", "dmls", "dmls_linear", "dmls_forest", "nsga2", "random", "dmls_k3"]
    assert list(per) == labels and doc["complete"] and doc["seed_smallest"] is True
    assert per["dmls_linear"]["strategy"] == "dmls" and per["dmls_linear"]["overrides"] == ["search.dmls.neighbour_order=linear"]
    assert per["dmls_k3"]["overrides"] == ["search.dmls.initial_archive_size=3"]
    for r in doc["runs"]:
        assert r["n_trials"] == 10 and len(r["hv"]) == 10
        assert all(b >= a - 1e-12 for a, b in zip(r["hv"], r["hv"][1:]))  # a front only grows
        assert 0 < r["final_hv"] <= 1
    assert "samea vs dmls" in doc["summary"]["mann_whitney_u"] and doc["summary"]["best"] in labels
    tt = doc["summary"]["trials_to_target"]
    assert tt["variant"] == "dmls" and tt["target"].startswith("mean final hypervolume")
    assert set(tt["per_strategy"]) == set(labels)
    # recomputed from the runs: the target is dmls's mean final HV; a seed's count is the first
    # trial whose HV reaches it (None when it never does), and "reached" counts seeds, all kept
    goal = np.mean([r["final_hv"] for r in doc["runs"] if r["strategy"] == "dmls"])
    assert tt["target_hv"] == pytest.approx(goal, abs=1e-5)
    for label in labels:
        runs = [r for r in doc["runs"] if r["strategy"] == label]
        hits = [next((i + 1 for i, h in enumerate(r["hv"]) if h >= goal - 1e-12), None) for r in runs]
        got = tt["per_strategy"][label]
        assert got["trials_to_target"] == hits and got["n"] == len(runs) == 2
        assert got["reached"] == sum(h is not None for h in hits)
        assert got["mean_trials_all_seeds"] == pytest.approx(np.mean([10 if h is None else h for h in hits]), abs=0.05)
    st = doc["summary"]["stated_tests"]  # each variant against random, one-sided, Holm (issue 27)
    assert st["plan"]["control"] == "random" and st["plan"]["correction"] == "holm"
    assert set(st["per_variant"]) == set(labels) - {"random"}
    assert json.loads((tmp_path / "w" / "analytic" / "stated_tests.json").read_text()) == st["plan"]
    md = out.with_suffix(".md").read_text()
    assert "| dmls_linear (`dmls`, `search.dmls.neighbour_order=linear`) |" in md and "trials to dmls's HV" in md
    assert "Stated before the run: one-sided Mann–Whitney U" in md and "| samea | 2 |" in md
    # paired by seed: each variant against the same seed's dmls final HV (the LS-PON target's figure)
    pt = doc["summary"]["paired_trials_to_target"]["per_strategy"]
    assert set(pt) == set(labels) - {"dmls"} and pt["dmls_linear"]["seeds"] == [0, 1]
    dmls = {r["seed"]: r["hv"] for r in doc["runs"] if r["strategy"] == "dmls"}
    for r in (r for r in doc["runs"] if r["strategy"] == "dmls_linear"):
        hit = next((i + 1 for i, h in enumerate(r["hv"]) if h >= dmls[r["seed"]][-1] - 1e-12), None)
        assert pt["dmls_linear"]["trials"][r["seed"]] == hit
    assert "Paired by seed: trials to reach the same seed's dmls final HV" in md
    assert out.with_suffix(".png").stat().st_size > 1000
    front = json.loads((tmp_path / "w" / "analytic" / "dmls_s0" / "front.json").read_text())
    assert front["front"] and front["knee"] in {e["id"] for e in front["front"]}
    with pytest.raises(SystemExit, match="tests were stated"):  # a plan cannot change after a run
        bs.main(["--mode", "analytic", "--seeds", "0", "--budget", "3", "--work-dir", str(tmp_path / "w"),
                 "--alpha", "0.01", "--out", str(tmp_path / "other.json")])


def test_bench_search_records_the_surrogates_pairs_and_counts_tau_within_runs(tmp_path):
    bs = _load("bench_search")
    out = tmp_path / "search.json"
    assert bs.main(["--mode", "analytic", "--seeds", "0-2", "--budget", "30", "--work-dir", str(tmp_path / "w"),
                    "--variants", "samea,dmls_forest", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    per = doc["summary"]["per_strategy"]
    for label in ("samea", "dmls_forest"):
        runs = [r for r in doc["runs"] if r["strategy"] == label]
        pairs = [r["surrogate_pair_values"] for r in runs]
        assert [len(p) for p in pairs] == per[label]["surrogate_pairs"] and sum(map(len, pairs)) >= 6, label
        con = dis = 0  # recounted: every two pairs of one run, never across runs
        for ps in pairs:
            for i, p in enumerate(ps):
                for q in ps[i + 1:]:
                    s = np.sign(p[0] - q[0]) * np.sign(p[1] - q[1])
                    con, dis = con + (s > 0), dis + (s < 0)
        w = per[label]["surrogate_tau_within_runs"]
        assert (w["concordant"], w["discordant"]) == (con, dis) and w["runs"] == sum(len(p) >= 2 for p in pairs)
    assert "each compared only with pairs of its own run: samea" in out.with_suffix(".md").read_text()


@pytest.mark.parametrize("variants,message", [
    ("dmls_x=dmls:search.seed_smallest=false", "search.seed_smallest is the same for every variant"),
    ("x=dmls:train.epochs=3", "must look like search.<key>=<value>"),
    ("x=grid", "unknown strategy 'grid'"),
    ("dmls,dmls", "labels must be unique"),
])
def test_bench_search_variants_reject_unequal_or_unknown(variants, message):
    bs = _load("bench_search")
    with pytest.raises(SystemExit, match=message):
        bs.parse_variants(variants)


def test_bench_search_variant_overrides_are_validated(tmp_path):
    bs = _load("bench_search")
    with pytest.raises(SystemExit, match="variant bad: .*neighbour_order"):
        bs.main(["--mode", "analytic", "--seeds", "0", "--budget", "3", "--work-dir", str(tmp_path / "w"),
                 "--variants", "bad=dmls:search.dmls.neighbour_order=lienar", "--out", str(tmp_path / "o.json")])
    assert not (tmp_path / "o.json").exists()


def test_bench_search_train_cache_and_peers_with_run_dir(tmp_path, synthetic_root):
    bs = _load("bench_search")
    argv = ["--mode", "train", "--strategies", "dmls,random", "--seeds", "0", "--budget", "2",
            "--data-root", str(synthetic_root), "--spacing", "4", "4", "4", "--patch", "16", "16", "16",
            "--epochs", "1", "--iters", "1", "--set", "data.val_fraction=0.34", "--set", "data.test_fraction=0.17",
            "--work-dir", str(tmp_path / "w")]
    assert bs.main(argv + ["--out", str(tmp_path / "a.json")]) == 0
    a = json.loads((tmp_path / "a.json").read_text())
    assert a["trained_this_invocation"] >= 2 and all(r["n_trials"] == 2 for r in a["runs"])
    assert a["runs"][0]["cache_hits"] == 0  # the first run trained its genomes: none is reported cached
    # the same genomes with the same budget are answered from the cache: nothing is trained again
    assert bs.main(argv + ["--out", str(tmp_path / "b.json")]) == 0
    b = json.loads((tmp_path / "b.json").read_text())
    assert b["trained_this_invocation"] == 0
    assert [r["final_hv"] for r in b["runs"]] == [r["final_hv"] for r in a["runs"]]
    # --until K trains the first K epochs of the schedule (a halving rung), in a cache of its own
    rung = argv[:argv.index("--epochs")] + ["--epochs", "2", "--iters", "1", "--until", "1"] + argv[argv.index("--set"):]
    assert bs.main([a if a != str(tmp_path / "w") else str(tmp_path / "r") for a in rung]
                   + ["--out", str(tmp_path / "c.json")]) == 0
    c = json.loads((tmp_path / "c.json").read_text())
    assert c["problem"]["until_epoch"] == 1 and c["problem"]["budget_hash"] != a["problem"]["budget_hash"]
    cache = [json.loads(x) for x in (tmp_path / "r" / "cache.jsonl").read_text().splitlines()]
    assert cache and all(e["epochs_run"] == 1 for e in cache if e["status"] == "done")

    bp = _load("bench_peers")
    out = tmp_path / "peers.json"
    assert bp.main(["--tiny", "--nets", "monai_dynunet,emonas_cardiac,nas_knee,nas_small",
                    "--run-dir", str(tmp_path / "w" / "train" / "dmls_s0"), "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert {"monai_dynunet", "emonas_cardiac", "nas_knee", "nas_small"} <= set(doc["results"])
    for name, r in doc["results"].items():
        assert r["n_params"] > 0 and r["runs"][0]["status"] == "done", (name, r["runs"][0]["error"])
        assert len(r["test"]) == len(doc["data"]["labels"]) - 1
        assert r["infer_ms_per_volume"] > 0 and "claim_holds" in r


def test_bench_search_workers_fill_one_cache_and_the_replay_matches_a_serial_run(tmp_path, synthetic_root):
    """--jobs 2: two worker processes fill the shared cache (a tracked file can hold it), the record
    is replayed from it; a serial invocation on the same cache trains nothing and gets the same
    hypervolumes, so the parallel record is the serial one."""
    bs = _load("bench_search")
    cache = tmp_path / "kept" / "trials.jsonl"
    argv = ["--mode", "train", "--variants", "random", "--seeds", "0,1", "--budget", "2",
            "--data-root", str(synthetic_root), "--spacing", "4", "4", "4", "--patch", "16", "16", "16",
            "--epochs", "1", "--iters", "1", "--set", "data.val_fraction=0.34", "--set", "data.test_fraction=0.17",
            "--cache", str(cache)]
    assert bs.main(argv + ["--jobs", "2", "--work-dir", str(tmp_path / "p"), "--out", str(tmp_path / "p.json")]) == 0
    assert (tmp_path / "p" / "worker0.log").is_file() and (tmp_path / "p" / "worker1.log").is_file()
    p = json.loads((tmp_path / "p.json").read_text())
    assert p["trained_this_invocation"] == 0 and p["complete"]  # the workers trained everything
    lines = [json.loads(x) for x in cache.read_text().splitlines()]
    assert len(lines) >= 3 and {e["budget"] for e in lines} == {p["problem"]["budget_hash"]}
    replay = argv + ["--replay-only", "--work-dir", str(tmp_path / "s")]
    assert bs.main(replay + ["--out", str(tmp_path / "s.json")]) == 0
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["trained_this_invocation"] == 0
    assert [r["final_hv"] for r in s["runs"]] == [r["final_hv"] for r in p["runs"]]
    assert all(r["cache_hits"] == r["n_trials"] for r in s["runs"])
    # --replay-only never trains: a seed the cache does not cover stops the run, the cache unchanged
    before = cache.read_bytes()
    with pytest.raises(SystemExit, match="--replay-only: genome .* is not in"):
        bs.main(replay + ["--seeds", "2", "--out", str(tmp_path / "m.json")])
    assert cache.read_bytes() == before


def test_bench_search_rescores_cached_trials_under_best_epoch_objectives_without_training(tmp_path, synthetic_root):
    """--rescore-from: another cache's trials under the config's objectives answer a run under other
    (dice_at best) objectives, f1 recomputed from the stored best-epoch Dice, written to the run's
    own cache; without it the new objectives are a new problem; last5 cannot be rescored."""
    bs = _load("bench_search")
    cache = tmp_path / "trials.jsonl"
    argv = ["--mode", "train", "--variants", "random", "--seeds", "0", "--budget", "2",
            "--data-root", str(synthetic_root), "--spacing", "4", "4", "4", "--patch", "16", "16", "16",
            "--epochs", "2", "--iters", "1", "--set", "data.val_fraction=0.34", "--set", "data.test_fraction=0.17",
            "--cache", str(cache)]
    assert bs.main(argv + ["--work-dir", str(tmp_path / "a"), "--out", str(tmp_path / "a.json")]) == 0
    source_text = cache.read_text()
    source = [json.loads(x) for x in source_text.splitlines()]
    argv[-1] = str(tmp_path / "best.jsonl")
    best = argv + ["--set", "objectives.dice_at=best", "--set", "objectives.alpha=0.5", "--set", "objectives.beta=0.25",
                   "--replay-only"]
    with pytest.raises(SystemExit, match="--replay-only: genome .* is not in"):  # another problem without it
        bs.main(best + ["--work-dir", str(tmp_path / "b"), "--out", str(tmp_path / "b.json")])
    assert bs.main(best + ["--rescore-from", str(cache), "--work-dir", str(tmp_path / "c"), "--out", str(tmp_path / "c.json")]) == 0
    doc = json.loads((tmp_path / "c.json").read_text())
    assert doc["trained_this_invocation"] == 0 and doc["problem"]["rescored_from"] == source[0]["budget"]
    assert cache.read_text() == source_text  # the source cache is only read
    lines = [json.loads(x) for x in (tmp_path / "best.jsonl").read_text().splitlines()]
    new = {e["key"]: e for e in lines if e["budget"] == doc["problem"]["budget_hash"]}
    done = [e for e in source if e["status"] == "done"]
    assert done and {e["key"] for e in source} == set(new)
    for e in done:
        want = 0.5 * (1 - e["train_dice"]) + (1 - e["val_dice"]) + 0.25 * (2 - e["e_max"]) / 2
        assert new[e["key"]]["f1"] == pytest.approx(want) and new[e["key"]]["f2"] == pytest.approx(e["f2"])
        assert new[e["key"]]["rescored_from"] == e["budget"]
    with pytest.raises(SystemExit, match="only under objectives.dice_at=best"):
        bs.main(argv + ["--set", "objectives.alpha=0", "--rescore-from", str(cache), "--work-dir", str(tmp_path / "d"),
                        "--out", str(tmp_path / "d.json")])


def test_bench_throughput_tiny_local(tmp_path):
    bt = _load("bench_throughput")
    out = tmp_path / "tp.json"
    assert bt.main(["--tiny", "--skip-ray", "--work-dir", str(tmp_path / "w"), "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["results"]["local"]["trials"] == 2 and doc["results"]["local"]["trials_per_hour"] > 0


def test_learning_curve_tiny(tmp_path, synthetic_root):
    lc = _load("learning_curve")
    assert lc.plateau_epoch([0.1, 0.5, 0.52, 0.6, 0.601, 0.59], tol=0.005) == 4
    assert lc.plateau_epoch([0.3, 0.2, 0.1], tol=0.005) == 1
    out = tmp_path / "curve.json"
    genome = '{"inputs": [0, 1, 2], "ops": ["conv3d_3", "identity", "identity", "identity"], "n_c": 2, "n_f": 3, "lr": 0.003}'
    assert lc.main(["--config", str(SCRIPTS.parent / "configs" / "quickstart.yaml"), "--data-root", str(synthetic_root),
                    "--set", "data.patch_size=[32,32,8]", "--set", "data.target_spacing=null",
                    "--genome", genome, "--epochs", "2", "--iters", "1", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["finished"] and [c["epoch"] for c in doc["curve"]] == [1, 2]
    assert 1 <= doc["plateau"]["epoch"] <= 2


def test_bench_cells_tiny(tmp_path):
    bc = _load("bench_cells")
    out = tmp_path / "cells.json"
    assert bc.main(["--tiny", "--nets", "cardiac_*", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert set(doc["results"]) == {"cardiac_emonas_lr0.001", "cardiac_residual_lr0.001"}
    for r in doc["results"].values():
        assert r["runs"][0]["status"] == "done", r["runs"][0]["error"]
    res = doc["results"]
    assert res["cardiac_emonas_lr0.001"]["n_params"] != res["cardiac_residual_lr0.001"]["n_params"]
    c = doc["comparison"]
    assert c["n_pairs"] == 1 and c["better"] in ("emonas", "residual", "tie")
    d = c["per_genome"]["cardiac_lr0.001"]
    assert d["diff_mean"] == round(d["emonas"]["mean"] - d["residual"]["mean"], 4)
    from medseg_nas.bench.tables import cells

    table = cells(doc)
    assert "`cardiac_lr0.001`" in table and "better: **" in table


def test_difficulty_probe_runs_and_writes_figures(tmp_path):
    """`python scripts/difficulty.py` (the 1×1×1 vs 3×3×3 measurement) on a tiny budget."""
    from data_prep import synthetic

    difficulty = _load("difficulty")
    root = tmp_path / "syn"
    synthetic.generate(root, cases=5, seed=0)
    out = tmp_path / "d.json"
    config = SCRIPTS.parent / "configs" / "quickstart.yaml"
    assert difficulty.main(["--config", str(config), "--data-root", str(root), "--set", "data.patch_size=[16,16,16]", "--epochs", "1",
                            "--iters", "1", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert set(doc["summary"]) == {"conv3d_1", "conv3d_3"} and doc["budget"]["epochs"] == 1
    assert doc["summary"]["conv3d_1"]["n_params"] < doc["summary"]["conv3d_3"]["n_params"]
    for rows in doc["runs"].values():
        assert [r["status"] for r in rows] == ["done"] and 0 <= rows[0]["val_dice"] <= 1


def test_space_ablation_pairs_cases_and_states_its_verdict():
    """The mix study's statistic: paired per-case differences, seeds averaged first, only the cases
    every run scored; a shift on every case is found, a zero-mean jitter is not."""
    sa = _load("space_ablation")
    rng = np.random.default_rng(0)
    cases = [f"c{i}" for i in range(16)]
    full = {s: {c: {"LV": 0.9 + 0.02 * rng.standard_normal(), "mean": 0.85} for c in cases} for s in (0, 1)}
    lower = {s: {c: {"LV": v["LV"] - 0.05, "mean": 0.80} for c, v in full[s].items()} for s in (0, 1)}
    jitter = {s: {c: {"LV": v["LV"] + (0.01 if i % 2 else -0.01), "mean": 0.85}
                  for i, (c, v) in enumerate(full[s].items())} for s in (0, 1)}
    jitter[1]["extra_case"] = {"LV": 0.0, "mean": 0.0}  # scored by one run only: not paired
    out = sa.compare({"full": full, "3d": lower, "2d": jitter})
    assert out["3d-full"]["LV"]["mean"] == pytest.approx(-0.05, abs=1e-4) and out["3d-full"]["LV"]["high"] < 0
    assert out["3d-full"]["verdict"].startswith("lower than full")
    assert out["2d-full"]["LV"]["n_cases"] == 16 and out["2d-full"]["LV"]["low"] < 0 < out["2d-full"]["LV"]["high"]
    assert out["2d-full"]["verdict"].startswith("no difference shown")
    assert sa.SPACES["3d"] and all(op.startswith("conv3d") or op == "identity" for op in sa.SPACES["3d"])


def test_space_ablation_adopts_a_finished_run_only_if_it_ran_the_arms_config(tmp_path):
    """--reuse: the config's own whole job is the full arm at its seed; a run with another budget
    or another space is refused, naming what differs, and an unfinished run is refused."""
    from medseg_nas.config import load_config, save_config

    sa = _load("space_ablation")
    config = str(SCRIPTS.parent / "configs" / "acdc_cpu.yaml")

    def run(name, sets):
        d = tmp_path / name
        (d / "best").mkdir(parents=True)
        save_config(load_config(config, sets + ["name=other", "run_root=elsewhere"]), d / "config.yaml")
        (d / "best" / "summary.json").write_text("{}")
        return d

    same = run("same", ["search.seed=0"])
    assert sa.adopt(config, "full", 0, same) == same
    with pytest.raises(SystemExit, match="search.seed"):
        sa.adopt(config, "full", 1, same)
    with pytest.raises(SystemExit, match="space.ops"):
        sa.adopt(config, "3d", 0, same)
    assert sa.adopt(config, "3d", 0, run("three_d", sa.arm_sets("3d", 0))).name == "three_d"
    longer = run("longer", ["search.seed=0", "retrain.epochs=120"])
    with pytest.raises(SystemExit, match=r"retrain.epochs \(120 vs 90\)"):
        sa.adopt(config, "full", 0, longer)
    (same / "best" / "summary.json").unlink()
    with pytest.raises(SystemExit, match="no best/summary.json"):
        sa.adopt(config, "full", 0, same)


def test_space_ablation_reads_recorded_arms_instead_of_rerunning_them(tmp_path, monkeypatch):
    """A record outlives its run directories: arms already in --out (same config) are not rerun,
    a missing arm is, and the within-seed comparison uses only seeds every space finished."""
    sa = _load("space_ablation")
    config = str(SCRIPTS.parent / "configs" / "acdc_cpu.yaml")
    cases = [f"c{i}" for i in range(8)]

    def arm(shift):
        pc = {c: {"LV": 0.8 + shift + 0.01 * i, "mean": 0.8 + shift + 0.01 * i} for i, c in enumerate(cases)}
        return {"run_dir": "gone", "test_mean_dice": 0.8 + shift, "per_case": pc, "per_case_raw": pc}

    out = tmp_path / "record.json"
    out.write_text(json.dumps({"benchmark": "space_ablation", "config": config,
                               "runs": {"full": {"0": arm(0.0), "1": arm(0.01)}, "2d": {"0": arm(0.05)}}}))
    ran = []

    def fake_run(config_, space, seed, work, reuse=None):
        ran.append((space, seed))
        raise SystemExit("stop after the first missing arm")

    monkeypatch.setattr(sa, "run_one", fake_run)
    monkeypatch.setattr(sa, "groups_of", lambda root: None)
    with pytest.raises(SystemExit, match="first missing arm"):
        sa.main([config, "--spaces", "full,2d", "--seeds", "0,1", "--out", str(out), "--work", str(tmp_path / "w")])
    assert ran == [("2d", 1)]  # full 0, 2d 0 and full 1 came from the record
    doc = json.loads(out.read_text())
    assert doc["comparisons_by_seed"]["0"]["2d-full"]["mean"]["mean"] == pytest.approx(0.05, abs=1e-4)
    assert set(doc["comparisons_by_seed"]) == {"0"}
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"benchmark": "space_ablation", "config": "configs/other.yaml", "runs": {}}))
    with pytest.raises(SystemExit, match="another benchmark or config"):
        sa.main([config, "--spaces", "full", "--seeds", "0", "--out", str(other)])


def test_space_ablation_scores_the_raw_output_beside_the_post_processed_one():
    sa = _load("space_ablation")
    lv = lambda d: {"classes": {"LV": {"dice": d}}, "mean_dice": d}  # noqa: E731
    summary = {"cases": [{"id": "a", **lv(0.9), "raw": lv(0.8)}, {"id": "b", **lv(0.7)}]}
    assert sa.per_case_dice(summary) == {"a": {"LV": 0.9, "mean": 0.9}, "b": {"LV": 0.7, "mean": 0.7}}
    assert sa.per_case_dice(summary, raw=True) == {"a": {"LV": 0.8, "mean": 0.8}, "b": {"LV": 0.7, "mean": 0.7}}
