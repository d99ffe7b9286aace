"""scripts/whole_job_summary.py and whole_job_peers.py on a tiny finished `medseg-nas run`."""

import json
from pathlib import Path

import pytest
import yaml

from medseg_nas.cli import main as cli
from script_loader import load_script
from test_pipeline_e2e import TINY


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("whole_job")
    cfg = dict(TINY, run_root=str(tmp / "runs"))
    cfg["data"] = dict(TINY["data"], root=str(tmp / "data" / "phantoms"))
    (tmp / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    assert cli(["run", str(tmp / "tiny.yaml")]) == 0
    return tmp / "runs" / "e2e"


def test_peers_equal_seconds_resumable_then_summary(tiny_run, tmp_path, capsys):
    peers = load_script("whole_job_peers")
    out = tmp_path / "peers.json"
    plan = "nas_pick:0,1;smallest:0;monai_unet:0"
    assert peers.main([str(tiny_run), "--plan", plan, "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    retrain = json.loads((tiny_run / "best" / "retrain.json").read_text())
    assert doc["run_model_seconds"] == retrain["seconds"] and doc["n_test"] >= 1
    nas = doc["results"]["nas_pick"]
    assert [r["seed"] for r in nas["runs"]] == [0, 1] and nas["n_seeds"] == 2
    assert nas["runs"][0]["source"].endswith("model.pt")  # seed 0 is the run's own model, not retrained
    # one scoring path: the benchmark scores the run's own model exactly as `medseg-nas evaluate` did,
    # its raw output (evaluate's `raw` when the model's post-processing changed something)
    evaluated = json.loads((tiny_run / "best" / "summary.json").read_text())
    assert evaluated["tta"] is False and nas["runs"][0]["scored_on"].startswith("original grid")
    assert nas["runs"][0]["test_mean_dice"] == pytest.approx((evaluated["raw"] or evaluated)["mean_dice"], abs=1e-4)
    assert nas["runs"][0]["per_case_dice"] == {str(c["id"]): pytest.approx({**{n: v["dice"] for n, v in c.get("raw", c)["classes"].items()},
                                                                            "mean": c.get("raw", c)["mean_dice"],
                                                                            "mean_largest_component":
                                                                                c["largest_component"]["mean_dice"]}, abs=1e-4)
                                               for c in evaluated["cases"]}
    target = doc["run_model_seconds"]
    for run in [nas["runs"][1], doc["results"]["smallest"]["runs"][0], doc["results"]["monai_unet"]["runs"][0]]:
        # every retrained row follows the clock to the retrain's seconds, not an epoch count
        assert run["status"] == "done" and run["epochs"] >= 1 and run["calibration"]["method"] == "clock"
        assert run["train_s"] < target + 30.0 and run["steps"] >= 1
        assert 0.0 <= run["test_mean_dice"] <= 1.0
    assert doc["results"]["monai_unet"]["n_params"] > 10 * nas["n_params"]
    # this machine against the run's: timed once per invocation, before its first training, and kept on
    # every row it trained (the run's step is its retrain seconds over its epochs x iterations)
    speed, = doc["machine_speed"]
    assert speed["pick_bare_step_s_here"] > 0 and speed["here_slower_by_at_least"] == pytest.approx(
        speed["pick_bare_step_s_here"] / speed["run_step_s_at_most"], abs=0.01)
    run_epochs = nas["runs"][0]["epochs"]
    cfg = yaml.safe_load((tiny_run / "config.yaml").read_text())
    assert speed["run_step_s_at_most"] == pytest.approx(retrain["seconds"] / (run_epochs * cfg["retrain"]["iters_per_epoch"]), abs=1e-3)
    assert all(r["machine_speed"] == speed for e in doc["results"].values() for r in e["runs"] if "source" not in r)
    assert "machine_speed" not in nas["runs"][0]  # the run's own model was not trained here
    pairs = doc["paired_vs_pick"]  # the pick minus each network, per test case, seeds averaged first
    assert set(pairs) == {"smallest", "monai_unet"}
    assert pairs["monai_unet"]["seeds"] == {"nas_pick": [0, 1], "monai_unet": [0]}
    assert pairs["smallest"]["mean"]["n_cases"] == doc["n_test"] and "verdict" in pairs["smallest"]
    retrained = doc["paired_vs_retrained_pick"]  # the same without the run's own model (seed 0)
    assert retrained["monai_unet"]["seeds"] == {"nas_pick": [1], "monai_unet": [0]}
    assert retrained["monai_unet"]["machine_spread"] == 1.0  # one invocation: one timing for every row
    assert pairs["monai_unet"]["bare_step_s"]["nas_pick"][0] is None  # the own model was not timed here
    assert pairs["monai_unet"]["machine_spread"] is None  # so its machine, and the spread, are unknown

    # a rerun continues where it stopped: nothing finished is trained again
    capsys.readouterr()
    assert peers.main([str(tiny_run), "--plan", plan + ";nas_pick:2", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert said.count("already in") == 4 and "nas_pick       seed 2" in said
    assert [r["seed"] for r in json.loads(out.read_text())["results"]["nas_pick"]["runs"]] == [0, 1, 2]
    assert len(json.loads(out.read_text())["machine_speed"]) == 2  # one more invocation that trained
    with pytest.raises(SystemExit, match="unknown network"):
        peers.main([str(tiny_run), "--plan", "nnunet:0", "--out", str(out)])

    summary = load_script("whole_job_summary")
    dst = tmp_path / "whole.json"
    assert summary.main([str(tiny_run), "--peers", str(out), "--out", str(dst), "--costs", "--target-dice", "0.88"]) == 0
    whole = json.loads(dst.read_text())
    costs = whole["chosen"]["costs"]
    assert costs["macs"] > 0 and costs["latency_ms"] > 0 and costs["latency_runs"] == 5
    assert "mean_test_dice_ge_0.88" in whole["targets"] and "mean_test_dice_ge_0.89" not in whole["targets"]
    assert set(whole["stage_seconds"]) == {"prepare", "search", "retrain", "evaluate", "export", "report"}
    assert whole["chosen"]["n_params"] == nas["n_params"] and whole["search"]["n_done"] >= 1
    assert len(whole["trials"]) == whole["search"]["n_done"] and whole["search"]["trial_seconds"]["train_s"] > 0
    assert whole["search"]["fidelity"] == {"kind": "none"} and whole["chosen"]["rung"] is None
    assert whole["retrain"]["curve"]["epochs"] == TINY["retrain"]["epochs"]
    assert whole["targets"]["params_le_0.5M"]["met"] is True and whole["targets"]["whole_job_le_2h"]["met"] is True
    assert "dynunet_dice_at_10x_fewer_params" not in whole["targets"]  # no DynUNet row in this plan
    assert whole["peers"]["monai_unet"]["n_seeds"] == 1
    assert sorted(whole["test"]["per_case_dice"]) == sorted(whole["data"]["test_ids"])
    assert set(whole["test"]["largest_component"]["classes"]) == set(whole["test"]["classes"])
    row = json.loads(out.read_text())["results"]["monai_unet"]["runs"][0]
    assert set(row["test_largest_component"]) == set(row["test"]) | {"mean_dice", "mean_hd95_mm"}
    assert all("mean_largest_component" in v for v in row["per_case_dice"].values())

    capsys.readouterr()
    assert load_script("bench_tables").main([str(dst), str(out)]) == 0
    tables = capsys.readouterr().out
    assert "| **mean** |" in tables and "| params_le_0.5M |" in tables and "| monai_unet |" in tables


def test_proxy_fidelity_picks_front_and_non_front_resumes_and_taus(tiny_run, tmp_path, capsys):
    fid = load_script("proxy_fidelity")
    out = tmp_path / "fidelity.json"
    assert fid.main([str(tiny_run), "--genomes", "3", "--epochs", "1", "--iters", "1", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    ids = [e["trial_id"] for e in doc["entries"]]
    assert doc["budget"] == [1, 1] and len(ids) == len(set(ids)) == 3  # the tiny search has 3 distinct trials
    front = {e["id"] for e in json.loads((tiny_run / "front.json").read_text())["front"]}
    assert front & set(ids)
    assert all(0.0 <= e["test_mean_dice"] <= 1.0 for e in doc["entries"])
    assert doc["kendall"]["n"] == 3 and set(doc["kendall"]) >= {"neg_f1", "search_val_dice", "met"}
    capsys.readouterr()
    assert fid.main([str(tiny_run), "--genomes", "3", "--epochs", "1", "--iters", "1", "--out", str(out)]) == 0
    assert "3 already measured" in capsys.readouterr().out
    assert len(json.loads(out.read_text())["entries"]) == 3
    with pytest.raises(SystemExit, match="measured on"):
        fid.main([str(tiny_run), "--genomes", "3", "--epochs", "2", "--iters", "1", "--out", str(out)])
    with pytest.raises(SystemExit, match="seed 0; not .* seed 1"):  # another seed belongs in another file
        fid.main([str(tiny_run), "--genomes", "3", "--epochs", "1", "--iters", "1", "--seed", "1", "--out", str(out)])
    seeded = tmp_path / "fidelity_seed1.json"
    assert fid.main([str(tiny_run), "--genomes", "1", "--epochs", "1", "--iters", "1", "--seed", "1",
                     "--out", str(seeded)]) == 0
    assert json.loads(seeded.read_text())["seed"] == 1 and len(json.loads(seeded.read_text())["entries"]) == 1
    capsys.readouterr()
    assert load_script("bench_tables").main([str(out)]) == 0
    assert "Kendall τ over 3 genomes" in capsys.readouterr().out


def test_choose_trials_spreads_front_and_rest():
    from types import SimpleNamespace as NS

    fid = load_script("proxy_fidelity")
    rows = [NS(id=i, key=f"g{i}", status="done", f1=f1, f2=f2)
            for i, (f1, f2) in enumerate([(0.1, 9), (0.2, 8), (0.3, 7), (0.5, 9.5), (0.6, 9.6), (0.7, 9.7),
                                          (0.8, 9.8), (0.9, 9.9)])]
    rows.append(NS(id=99, key="g0", status="done", f1=0.05, f2=9))  # the same genome asked again
    rows.append(NS(id=100, key="gx", status="failed", f1=None, f2=None))
    picked = [r.id for r in fid.choose_trials(rows, 4)]
    assert picked[:2] == [2, 0] and len(picked) == 4 and set(picked[2:]) <= {3, 4, 5, 6, 7} and 3 in picked
    assert len(fid.choose_trials(rows, 20)) == 8


def test_tta_gain_scores_plain_and_mirrored_without_touching_the_run(tiny_run, tmp_path, capsys):
    before = (tiny_run / "best" / "summary.json").read_text()
    out = tmp_path / "tta.json"
    assert load_script("tta_gain").main([str(tiny_run), "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["n_cases"] >= 1 and set(doc) >= {"plain", "mirror_tta", "gain"}
    evaluated = json.loads(before)  # as evaluate scores the raw output
    assert doc["plain"]["mean_dice"] == pytest.approx((evaluated["raw"] or evaluated)["mean_dice"], abs=1e-4)
    assert doc["gain"]["mean_dice"] == pytest.approx(doc["mirror_tta"]["mean_dice"] - doc["plain"]["mean_dice"], abs=1e-4)
    assert (tiny_run / "best" / "summary.json").read_text() == before
    capsys.readouterr()
    assert load_script("bench_tables").main([str(out)]) == 0
    assert "Gain of mirror TTA" in capsys.readouterr().out


def test_taus_also_without_trials_that_learned_nothing():
    fid = load_script("proxy_fidelity")
    entries = [{"f1": f1, "search_val_dice": v, "test_mean_dice": d}
               for f1, v, d in [(1.4, 0.0, 0.01), (0.4, 0.8, 0.80), (0.5, 0.7, 0.85), (0.6, 0.6, 0.84), (0.7, 0.5, 0.83)]]
    k = fid.taus(entries)
    assert k["n"] == 5 and k["neg_f1"]["tau"] == pytest.approx(0.4)  # 7 concordant, 3 discordant pairs
    assert k["learned_only"]["n"] == 4 and k["learned_only"]["neg_f1"]["tau"] == pytest.approx(0.0)
    assert "learned_only" not in fid.taus(entries[1:])  # nothing to leave out


def test_proxy_budget_retrains_trials_per_budget_resumes_and_taus(tiny_run, tmp_path, capsys):
    fid_out = tmp_path / "fidelity.json"
    assert load_script("proxy_fidelity").main([str(tiny_run), "--genomes", "3", "--epochs", "1", "--iters", "1",
                                               "--out", str(fid_out)]) == 0
    budget = load_script("proxy_budget")
    out = tmp_path / "budget.json"
    args = [str(tiny_run), "--fidelity", str(fid_out), "--budgets", "1x1,2x1,2x1@1", "--out", str(out)]
    assert budget.main(args) == 0
    doc = json.loads(out.read_text())
    assert set(doc["budgets"]) == {"1x1", "2x1", "2x1@1"} and doc["fidelity_budget"] == [1, 1]
    # a rung: epoch 1 of a 2-epoch schedule, one step, judged over that epoch
    assert doc["budgets"]["2x1@1"]["until"] == 1 and doc["budgets"]["2x1"]["until"] == 2
    for key, steps in (("1x1", 1), ("2x1", 2), ("2x1@1", 1)):
        v = doc["budgets"][key]
        assert v["steps"] == steps and v["n"] + v["failed"] == 3 and v["seconds"] > 0
        assert v["kendall"]["n"] == v["n"]
    assert all(e["f1"] is None or e["f1"] > 0 for e in doc["runs"]["2x1"])
    capsys.readouterr()
    assert budget.main(args) == 0  # nothing left to train: the rerun only summarises
    assert "[1x1" not in capsys.readouterr().out and len(json.loads(out.read_text())["runs"]["1x1"]) == 3
    for bad in ("4by50", "4x50@5", "4x50@x"):
        with pytest.raises(SystemExit, match="EPOCHSxITERS|K <= epochs"):
            budget.main([str(tiny_run), "--fidelity", str(fid_out), "--budgets", bad, "--out", str(out)])
    capsys.readouterr()
    assert load_script("bench_tables").main([str(out)]) == 0
    assert "(the search's)" in capsys.readouterr().out


def test_summary_fidelity_is_the_runners_with_its_promotion_pool():
    """A halving run's record says its ladder and how many trials finished each rung as the runner's
    front.json counts them (test_halving checks those counts), and which trials could be promoted."""
    from types import SimpleNamespace

    from medseg_nas.bench.whole_job import fidelity_of
    from medseg_nas.config import FidelityConfig

    cfg = SimpleNamespace(search=SimpleNamespace(fidelity=FidelityConfig(kind="halving", eta=9, rungs=[1, 5], promote="pickable")))
    front = {"fidelity": {"kind": "halving", "eta": 9, "rungs": [1, 5], "trials_per_rung": [3, 1]}}
    assert fidelity_of(cfg, front) == {"kind": "halving", "eta": 9, "rungs": [1, 5], "trials_per_rung": [3, 1],
                                       "promote": "pickable"}
    plain = SimpleNamespace(search=SimpleNamespace(fidelity=FidelityConfig()))
    assert fidelity_of(plain, {"fidelity": None}) == fidelity_of(plain, {}) == {"kind": "none"}


def test_summary_mean_dice_interval_from_cases():
    """The split's sampling error: a percentile bootstrap over cases, about mean ± 1.96 SE."""
    summary = load_script("whole_job_summary")
    cases = [{"mean_dice": 0.8 if i % 2 else 0.9} for i in range(21)]
    ci = summary.mean_dice_ci(cases)
    mean = sum(c["mean_dice"] for c in cases) / 21
    assert ci["n_cases"] == 21 and ci["low"] < mean < ci["high"] and 0.8 < ci["low"] and ci["high"] < 0.9
    assert 0.03 < ci["high"] - ci["low"] < 0.06  # 2 x 1.96 x 0.0512 / sqrt(21) = 0.044
    assert summary.mean_dice_ci(cases[:2]) == {}


def test_retrain_ablation_equal_seconds_checks_split_and_resumes(tiny_run, tmp_path, capsys):
    """One change at a time, each trained to the same seconds, scored on the record's test cases."""
    record = tmp_path / "whole.json"
    assert load_script("whole_job_summary").main([str(tiny_run), "--out", str(record)]) == 0
    ablation = load_script("retrain_ablation")
    # the config has moved on since the run (retrain.augment: full): the control is still the record's
    cfg = yaml.safe_load((tiny_run.parent.parent / "tiny.yaml").read_text())
    cfg["retrain"] = dict(cfg.get("retrain") or {}, augment="full")
    config = str(tmp_path / "tiny_now.yaml")
    Path(config).write_text(yaml.safe_dump(cfg))
    out = tmp_path / "ablation.json"
    args = [config, "--record", str(record), "--work", str(tmp_path / "work"), "--seconds", "3", "--out", str(out)]
    assert ablation.main(args + ["--variants", "base;augment_full"]) == 0
    doc = json.loads(out.read_text())
    base, full = doc["rows"]
    assert (base["variant"], base["augment"], full["augment"]) == ("base", "none", "full")
    assert ablation.record_augment({"data": {"augment": "light"}}) == "light"  # records before retrain.augment
    for row in doc["rows"]:
        assert row["status"] == "done" and row["train_s"] < 3 + 30 and row["steps"] >= 1 and row["target_s"] == 3
        assert row["genome"] == doc["chosen"]["genome"] and 0.0 <= row["test_mean_dice"] <= 1.0

    assert load_script("bench_tables").main([str(out)]) == 0
    assert "| augment_full | 0 | retrain.augment=full |" in capsys.readouterr().out

    capsys.readouterr()  # a rerun skips what is there
    assert ablation.main(args + ["--variants", "base"]) == 0
    assert "already in" in capsys.readouterr().out and len(json.loads(out.read_text())["rows"]) == 2
    # --pair-with: every row against the run's own model; the peers record is named beside the pairs
    peers = tmp_path / "peers.json"
    peers.write_text(json.dumps({"results": {"nas_pick": {"runs": [
        {"seed": 0, "source": "runs/x/best/model.pt", "per_case_dice": base["per_case_dice"]}]}}}))
    assert ablation.main(args + ["--variants", "", "--pair-with", str(peers)]) == 0
    doc = json.loads(out.read_text())
    assert doc["run_model_record"] == str(peers) and set(doc["paired_vs_run_model"]) == {"base", "augment_full"}
    assert doc["paired_vs_run_model"]["base"]["mean"]["mean"] == pytest.approx(0.0)  # the same model
    assert "augment_full - the run's own model" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="unknown"):
        ablation.main(args + ["--variants", "bigger"])
    wrong = json.loads(record.read_text())
    wrong["data"]["test_ids"] = ["not_a_case"]
    record.write_text(json.dumps(wrong))
    with pytest.raises(SystemExit, match="not the record's"):
        ablation.main(args[:-1] + [str(tmp_path / "other.json"), "--variants", "n_f5"])


def test_ablation_table_compares_each_seed_with_its_own_base():
    """A retrained network's seeds differ: `vs base` pairs seeds, and repeated variants get mean ± std."""
    from medseg_nas.bench import tables
    genome = {"n_c": 2}

    def row(variant, seed, dice):
        return {"variant": variant, "seed": seed, "test_mean_dice": dice, "overrides": [], "genome": genome,
                "n_params": 1000, "steps": 10, "epochs_run": 1, "target_s": 5.0, "step_ms": 1.0, "e_max": 1,
                "val_dice": 0.5, "test_mean_hd95_mm": 1.0, "why": "", "status": "done",
                "test": {"a": {"dice": dice}, "b": {"dice": dice}}}

    doc = {"chosen": {"genome": genome}, "record_test_mean_dice": 0.8, "seconds": 5.0,
           "rows": [row("light", 0, 0.86), row("base", 1, 0.84), row("base", 0, 0.80), row("light", 1, 0.85)]}
    lines = tables.retrain_ablation(doc).splitlines()
    light = [line for line in lines if line.startswith("| light |")]
    assert "| +0.0600 |" in light[0] and "| +0.0100 |" in light[1]  # each against its own seed's base
    assert "base: test Dice 0.8200 ± 0.0283 over 2 seeds." in lines
    assert "light: test Dice 0.8550 ± 0.0071 over 2 seeds." in lines


def test_deployment_cost_study_times_every_network_in_three_backends(tiny_run, tmp_path, capsys):
    summary = load_script("whole_job_summary")
    record = tmp_path / "whole.json"
    assert summary.main([str(tiny_run), "--out", str(record)]) == 0
    peers = tmp_path / "peers.json"
    peers.write_text(json.dumps({"results": {"monai_dynunet": {"test_mean_dice": 0.5, "test_mean_hd95_mm": 9.0, "n_seeds": 3},
                                             "monai_unet": {"test_mean_dice": 0.01, "n_seeds": 1}}}))
    out = tmp_path / "cost.json"
    study = load_script("deployment_cost_study")
    assert study.main(["--cost-run", str(tiny_run), "--params-record", str(record), "--peers", str(peers),
                       "--threads", "1", "--runs", "1", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    nets = doc["networks"]
    assert set(nets) == {"cost_pick", "params_pick", "monai_dynunet", "monai_unet"} and doc["cost"] == "params"
    for row in nets.values():
        assert row["macs"] > 0 and row["n_params"] > 0
        assert all(row["ms_per_volume"][b]["1"] > 0 for b in ("pytorch", "torchscript", "onnx"))
    assert nets["monai_dynunet"]["dice"] == 0.5 and nets["monai_unet"]["n_seeds"] == 1
    assert nets["monai_dynunet"]["macs"] > nets["params_pick"]["macs"]
    assert doc["target"]["max_ms"] == round(nets["monai_dynunet"]["ms_per_volume"]["pytorch"]["1"] / 10, 1)
    assert "monai_unet" not in doc["target"]["met_by"]  # below DynUNet's Dice
    ids = {t["id"] for t in json.loads(record.read_text())["trials"]}
    assert set(doc["fronts"]["params_search"]["n_params"]) <= ids and doc["fronts"]["cost_search"]["macs"]


def test_peers_train_another_trial_of_the_search_beside_the_pick(tiny_run, tmp_path):
    record, out = tmp_path / "whole.json", tmp_path / "peers.json"
    assert load_script("whole_job_summary").main([str(tiny_run), "--out", str(record)]) == 0
    trials = json.loads(record.read_text())["trials"]
    other = next(t for t in reversed(trials) if t["genome"] != json.loads(record.read_text())["chosen"]["genome"])
    peers = load_script("whole_job_peers")
    name = f"trial_{other['id']}"
    with pytest.raises(SystemExit, match="unknown network"):  # only with --trials-from
        peers.main([str(tiny_run), "--plan", f"{name}:1", "--out", str(out)])
    assert peers.main([str(tiny_run), "--plan", f"nas_pick:1;{name}:1", "--trials-from", str(record),
                       "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    entry = doc["results"][name]
    assert entry["genome"] == other["genome"] and entry["trial_id"] == other["id"]
    assert entry["runs"][0]["status"] == "done" and entry["runs"][0]["calibration"]["method"] == "clock"
    assert doc["paired_vs_retrained_pick"][name]["seeds"] == {"nas_pick": [1], name: [1]}


def test_step_cost_study_costs_each_architecture_once_and_resumes(tiny_run, tmp_path, capsys):
    record, out = tmp_path / "whole.json", tmp_path / "step.json"
    assert load_script("whole_job_summary").main([str(tiny_run), "--out", str(record)]) == 0
    study = load_script("step_cost_study")
    args = [str(tiny_run), "--record", str(record), "--out", str(out), "--steps", "1", "--latency-runs", "1"]
    assert study.main(args + ["--only", "monai_dynunet"]) == 0
    assert [r["name"] for r in json.loads(out.read_text())["rows"]] == ["monai_dynunet"]
    assert study.main(args) == 0
    doc = json.loads(out.read_text())
    rows = {r["name"]: r for r in doc["rows"]}
    trials = json.loads(record.read_text())["trials"]
    archs = {study.architecture(study.Genome.from_dict(t["genome"])) for t in trials}
    assert len([r for r in rows.values() if r["kind"] == "trial"]) == len(archs)  # a repeated architecture once
    assert {"monai_dynunet", "monai_unet", "small_dynunet", "small_unet", "small_segresnet"} <= set(rows)
    assert list(rows).count("monai_dynunet") == 1  # resumed: not measured twice
    pick = next(r for r in rows.values() if r.get("is_pick"))  # the pick's genome in the authors' cell: its own row
    assert rows["nas_pick_cell_emonas"]["cell"] == "emonas" and rows["nas_pick_cell_emonas"]["n_params"] != pick["n_params"]
    for r in rows.values():
        assert r["macs"] > 0 and r["n_params"] > 0 and r["step_s"] > 0 and r["latency_ms"] > 0
    assert rows["monai_dynunet"]["macs"] > min(r["macs"] for r in rows.values() if r["kind"] == "trial")
    assert doc["taus"]["all_vs_step"]["n"] == len(rows) and "macs" in doc["taus"]["all_vs_step"]
    assert "all_vs_step" in capsys.readouterr().out


def test_search_problem_evaluates_a_genome_as_the_search_trial_did(tiny_run):
    """SearchProblem.evaluate is the search's trial: the same genome and seed on the run's data give
    the stored trial's validation Dice and f2 (CPU training is deterministic)."""
    from medseg_nas.nas.problem import SearchProblem
    from medseg_nas.rundir import RunDir
    from medseg_nas.space import Genome

    from medseg_nas.search.objectives import compute_objectives

    run = RunDir(tiny_run)
    row = next(r for r in run.trial_rows() if r.status == "done" and r.f1 is not None)
    problem = SearchProblem.build(run.config(), tiny_run)
    genome = Genome.from_dict(row.genome)
    assert problem.f2_of(genome) == pytest.approx(row.f2)
    assert problem.f1_bounds == (problem.box[0][0], problem.box[1][0])
    result = problem.evaluate(genome, trial_id=row.id, seed=row.seed)
    assert result.ok and compute_objectives(result, problem.cfg.objectives)[0] == pytest.approx(row.f1, abs=1e-6)


def test_peers_rebuild_a_run_dir_from_its_record_and_refuse_a_different_split(tiny_run, tmp_path, capsys):
    """Seeds span sessions, run directories do not: --rebuild makes the run's split and retrain.json
    again from the record and stops when the config would split the data differently."""
    from medseg_nas.bench.rebuilt_run import rebuild_run_dir
    from medseg_nas.errors import MedsegError

    peers = load_script("whole_job_peers")
    out, config = tmp_path / "peers.json", tiny_run.parent.parent / "tiny.yaml"
    assert peers.main([str(tiny_run), "--plan", "nas_pick:0", "--out", str(out)]) == 0
    rebuilt = tmp_path / "rebuilt"
    assert peers.main([str(rebuilt), "--rebuild", str(config), "--plan", "nas_pick:0,1", "--out", str(out)]) == 0
    assert (rebuilt / "split.json").read_bytes() == (tiny_run / "split.json").read_bytes()
    info = json.loads((rebuilt / "best" / "retrain.json").read_text())
    original = json.loads((tiny_run / "best" / "retrain.json").read_text())
    assert info["genome"] == original["genome"] and info["seconds"] == original["seconds"]
    doc = json.loads(out.read_text())
    assert [r["seed"] for r in doc["results"]["nas_pick"]["runs"]] == [0, 1]  # seed 0 kept, not rescored
    other = yaml.safe_load(config.read_text())
    other["data"]["split_seed"] = int(other["data"].get("split_seed", 0)) + 7
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    with pytest.raises(MedsegError, match="does not rebuild the split"):
        rebuild_run_dir(out, tmp_path / "other.yaml", tmp_path / "wrong")
    assert not (tmp_path / "wrong" / "config.yaml").exists()
    (tmp_path / "empty_root").mkdir()  # a data root without the dataset: load_data fails after config.yaml
    other["data"]["split_seed"] -= 7
    other["data"]["root"] = str(tmp_path / "empty_root")
    (tmp_path / "noroot.yaml").write_text(yaml.safe_dump(other))
    with pytest.raises(MedsegError):
        rebuild_run_dir(out, tmp_path / "noroot.yaml", tmp_path / "noroot")
    assert not (tmp_path / "noroot").exists()  # nothing left that a retry would refuse
    with pytest.raises(MedsegError, match="already holds a run"):
        rebuild_run_dir(out, config, tiny_run)
    doc["results"]["nas_pick"]["runs"] = doc["results"]["nas_pick"]["runs"][1:]
    out.write_text(json.dumps(doc))
    with pytest.raises(SystemExit, match="own model"):  # the rebuilt directory has no model.pt to score
        peers.main([str(rebuilt), "--plan", "nas_pick:0", "--out", str(out)])



def test_peers_rebuild_from_a_whole_job_summary(tiny_run, tmp_path):
    """A run whose peers were never measured (ACDC) is rebuilt from its whole-job summary: the same
    split, genome and seconds; a summary naming other test cases stops it and leaves nothing behind."""
    from medseg_nas.bench.rebuilt_run import rebuild_run_dir
    from medseg_nas.errors import MedsegError

    record, config = tmp_path / "whole.json", tiny_run.parent.parent / "tiny.yaml"
    assert load_script("whole_job_summary").main([str(tiny_run), "--out", str(record)]) == 0
    rebuilt = rebuild_run_dir(record, config, tmp_path / "rebuilt")
    assert (rebuilt.path / "split.json").read_bytes() == (tiny_run / "split.json").read_bytes()
    info = json.loads(rebuilt.retrain_json.read_text())
    original = json.loads((tiny_run / "best" / "retrain.json").read_text())
    assert info["genome"] == original["genome"] and info["seconds"] == pytest.approx(original["seconds"], abs=0.1)
    doc = json.loads(record.read_text())
    doc["data"]["test_ids"] = doc["data"]["test_ids"][1:]
    record.write_text(json.dumps(doc))
    with pytest.raises(MedsegError, match="test differ"):
        rebuild_run_dir(record, config, tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_ablation_rows_pair_with_the_runs_own_model_over_patients():
    """A shorter budget's base row against the model the run trained: row - run model, patients
    resampled whole; retrained nas_pick seeds (no `source`) are not the run's model."""
    from medseg_nas.bench.ablation import paired_vs_run_model
    cases = [f"p{i}_{f}" for i in range(8) for f in ("ED", "ES")]
    groups = {c: c.split("_")[0] for c in cases}

    def per_case(value):
        return {c: {"RV": value, "mean": value} for c in cases}

    peers = {"results": {"nas_pick": {"runs": [
        {"seed": 0, "source": "runs/x/best/model.pt", "per_case_dice": per_case(0.80)},
        {"seed": 1, "per_case_dice": per_case(0.10)}]}}}  # a retrain: must not count as the run's model
    rows = [{"variant": "base", "seed": 0, "per_case_dice": per_case(0.75)},
            {"variant": "base", "seed": 1, "per_case_dice": per_case(0.77)}]
    pair = paired_vs_run_model(rows, peers, groups)["base"]
    assert pair["mean"]["mean"] == pytest.approx(-0.04) and pair["mean"]["unit"] == "group"
    assert pair["mean"]["n_groups"] == 8 and pair["RV"]["high"] < 0
    with pytest.raises(SystemExit, match="own model"):
        paired_vs_run_model(rows, {"results": {"nas_pick": {"runs": peers["results"]["nas_pick"]["runs"][1:]}}})


def test_step_cost_study_costs_a_sample_of_a_changed_space(tiny_run, tmp_path):
    """`--sample N --set ...`: N distinct random genomes of the overridden space, built in its cell."""
    from medseg_nas.data.plan import DataPlan
    from medseg_nas.rundir import RunDir
    from medseg_nas.space import Genome
    from medseg_nas.space.network import NetworkSpec

    record, out = tmp_path / "whole.json", tmp_path / "step.json"
    assert load_script("whole_job_summary").main([str(tiny_run), "--out", str(record)]) == 0
    assert load_script("step_cost_study").main([
        str(tiny_run), "--record", str(record), "--out", str(out), "--steps", "1", "--latency-runs", "1",
        "--sample", "3", "--set", "space.cell=residual_light", "--set", "space.n_f=[2]",
        "--only", "sample_0,sample_1,sample_2"]) == 0
    doc = json.loads(out.read_text())
    plan = DataPlan.from_dict(json.loads(RunDir(tiny_run).plan_json.read_text()))
    assert [r["name"] for r in doc["rows"]] == ["sample_0", "sample_1", "sample_2"]
    genomes = [Genome.from_dict(r["genome"]) for r in doc["rows"]]
    assert len({g.to_json() for g in genomes}) == 3 and all(g.n_f == 2 for g in genomes)
    for r, g in zip(doc["rows"], genomes):
        assert r["kind"] == "sample" and r["cell"] == "residual_light"
        assert r["n_params"] == NetworkSpec.of(plan, "residual_light").n_params(g)
    assert doc["taus"]["samples_vs_step"]["n"] == 3


def test_peers_train_the_pick_in_the_authors_cell_beside_it(tiny_run, tmp_path):
    """`nas_pick_cell_emonas`: the pick's genome, the authors' cell, the retrain's seconds, paired
    with the pick's retrained seeds (issue 26: the cells at the config's retrain budget)."""
    from medseg_nas.data.plan import DataPlan
    from medseg_nas.rundir import RunDir
    from medseg_nas.space import Genome
    from medseg_nas.space.network import NetworkSpec

    out = tmp_path / "peers.json"
    assert load_script("whole_job_peers").main([str(tiny_run), "--plan", "nas_pick:1;nas_pick_cell_emonas:1",
                                                "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    pick, emonas = doc["results"]["nas_pick"], doc["results"]["nas_pick_cell_emonas"]
    assert emonas["genome"] == pick["genome"] and emonas["cell"] == "emonas"
    plan = DataPlan.from_dict(json.loads(RunDir(tiny_run).plan_json.read_text()))
    g = Genome.from_dict(pick["genome"])
    spec = NetworkSpec.of(plan, "emonas")
    assert emonas["n_params"] == spec.n_params(g) != pick["n_params"]  # built in the other cell, not the pick again
    assert emonas["runs"][0]["status"] == "done" and emonas["runs"][0]["calibration"]["method"] == "clock"
    assert doc["paired_vs_retrained_pick"]["nas_pick_cell_emonas"]["seeds"] == {"nas_pick": [1],
                                                                                "nas_pick_cell_emonas": [1]}


def test_peers_train_the_pick_light_one_level_deeper_at_half_width(tiny_run, tmp_path):
    """`nas_pick_light`: the pick's cell (inputs, ops, lr) one level deeper at half the first-level
    filters, in the `residual_light` layout (plain full-resolution level), at the retrain's seconds."""
    from medseg_nas.data.plan import DataPlan
    from medseg_nas.rundir import RunDir
    from medseg_nas.space import Genome
    from medseg_nas.space.network import NetworkSpec

    out = tmp_path / "peers.json"
    assert load_script("whole_job_peers").main([str(tiny_run), "--plan", "nas_pick_light:1", "--out", str(out)]) == 0
    light = json.loads(out.read_text())["results"]["nas_pick_light"]
    pick = Genome.from_dict(json.loads(RunDir(tiny_run).retrain_json.read_text())["genome"])
    g = Genome.from_dict(light["genome"])
    assert (g.inputs, g.ops, g.lr) == (pick.inputs, pick.ops, pick.lr) and light["cell"] == "residual_light"
    assert (g.n_c, g.n_f) == (min(pick.n_c + 1, 4), max(pick.n_f - 1, 2)) and (g.n_c, g.n_f) != (pick.n_c, pick.n_f)
    plan = DataPlan.from_dict(json.loads(RunDir(tiny_run).plan_json.read_text()))
    assert light["n_params"] == NetworkSpec.of(plan, "residual_light").n_params(g) != NetworkSpec.of(plan, "residual").n_params(g)
    assert light["runs"][0]["status"] == "done" and light["runs"][0]["calibration"]["method"] == "clock"
