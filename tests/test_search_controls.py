"""The rule issue 27's real-data controls are judged by: the sign of the paired difference, the
best small network chosen by its own Dice, and no verdict quoted as final before every arm has
its seeds."""

import json

import numpy as np
import pytest

from medseg_nas.bench.controls import MIN_SEEDS, paired_vs_pick, study

CASES = [f"case_{i:02d}" for i in range(21)]


def _runs(level: float, seeds, spread: float = 0.02):
    rows = []
    for s in seeds:
        rng = np.random.default_rng(100 * s + int(level * 1000))
        d = {c: {"anterior": level + v, "posterior": level + v, "mean": level + v}
             for c, v in zip(CASES, rng.normal(0, spread, len(CASES)))}
        rows.append({"seed": s, "status": "done", "per_case_dice": d})
    return {"runs": rows, "n_params": 445_000}


def _docs(pick, rnd, small, seeds=(0, 1, 2)):
    search = {"n_test": 21, "results": {"nas_pick": _runs(pick, seeds),
                                        **{n: _runs(v, seeds) for n, v in small.items()}}}
    return search, {"n_test": 21, "results": {"nas_pick": _runs(rnd, seeds)}}


SMALL = {"small_unet": 0.80, "small_dynunet": 0.84, "small_segresnet": 0.78}


def test_credits_the_search_only_when_it_beats_random_and_the_best_small_network():
    out = study(*_docs(0.88, 0.84, SMALL))
    assert out["best_small"] == "small_dynunet"
    assert out["paired_vs"]["random_pick"]["mean"]["mean"] > 0.03  # pick - control, not control - pick
    assert out["beats"] == {"random_pick": True, "small_unet": True, "small_dynunet": True, "small_segresnet": True}
    assert out["verdict"].startswith("the search's pick beats") and not out["provisional"]


def test_a_control_level_with_the_pick_withholds_the_credit_and_is_named():
    out = study(*_docs(0.88, 0.84, {**SMALL, "small_dynunet": 0.88}))
    assert not out["beats"]["small_dynunet"] and out["beats"]["random_pick"]
    assert out["verdict"] == "not shown: the search's pick does not beat small_dynunet"
    out = study(*_docs(0.84, 0.88, SMALL))  # worse than random search: the interval is below 0
    assert out["paired_vs"]["random_pick"]["mean"]["high"] < 0
    assert "random_pick" in out["verdict"]


def test_fewer_seeds_or_a_missing_arm_is_provisional():
    search, rnd = _docs(0.88, 0.84, SMALL, seeds=(0,))
    out = study(search, rnd)
    assert out["provisional"] and out["seeds_short"]["search_pick"] == 1 < MIN_SEEDS
    del search["results"]["small_segresnet"]
    del rnd["results"]["nas_pick"]
    out = study(search, rnd)
    assert out["verdict"].startswith("not decided") and out["seeds_short"]["small_segresnet"] == 0


def _frames(per_patient: dict[str, tuple[float, float]]):
    """Two frames per patient (ED, ES) with the given mean Dice each."""
    return {f"{p}_{ph}": {"mean": v} for p, (ed, es) in per_patient.items() for ph, v in (("ED", ed), ("ES", es))}


def test_a_peer_record_carries_pick_minus_each_network_over_whole_patients():
    patients = {f"patient{i:03d}": (0.80 + 0.01 * i, 0.78 + 0.01 * i) for i in range(8)}
    worse = {p: (ed - 0.05, es - 0.05) for p, (ed, es) in patients.items()}
    results = {"nas_pick": {"runs": [{"seed": 0, "per_case_dice": _frames(patients)}]},
               "monai_dynunet": {"runs": [{"seed": s, "per_case_dice": _frames(worse)} for s in (0, 1)]},
               "monai_unet": {"runs": [{"seed": 0, "status": "failed"}]}}  # no per-case rows: no pair
    groups = {f"{p}_{ph}": p for p in patients for ph in ("ED", "ES")}
    out = paired_vs_pick(results, groups)
    assert set(out) == {"monai_dynunet"}
    iv = out["monai_dynunet"]["mean"]
    assert iv["mean"] == 0.05 and iv["low"] > 0  # pick - peer, not peer - pick
    assert iv["unit"] == "group" and iv["n_groups"] == 8 and iv["n_cases"] == 16
    assert out["monai_dynunet"]["seeds"] == {"nas_pick": [0], "monai_dynunet": [0, 1]}
    assert paired_vs_pick(results, None)["monai_dynunet"]["mean"]["unit"] == "case"
    assert paired_vs_pick({"monai_dynunet": results["monai_dynunet"]}) == {}  # no pick: nothing to pair


def test_the_retrained_pairing_leaves_out_the_runs_own_model():
    """The run's own model (a row with a `source`) trained on another machine than its peers: the
    retrained-only pairing must use the pick's other seeds alone, and say which."""
    patients = {f"patient{i:03d}": (0.80, 0.78) for i in range(8)}
    own = {p: (ed + 0.10, es + 0.10) for p, (ed, es) in patients.items()}
    results = {"nas_pick": {"runs": [{"seed": 0, "source": "run/best/model.pt", "per_case_dice": _frames(own)},
                                     {"seed": 1, "per_case_dice": _frames(patients)}]},
               "small_dynunet": {"runs": [{"seed": 0, "per_case_dice": _frames(patients)}]}}
    pooled = paired_vs_pick(results)["small_dynunet"]
    retrained = paired_vs_pick(results, retrained_only=True)["small_dynunet"]
    assert pooled["mean"]["mean"] == pytest.approx(0.05) and pooled["seeds"]["nas_pick"] == [0, 1]
    assert retrained["mean"]["mean"] == pytest.approx(0.0) and retrained["seeds"]["nas_pick"] == [1]
    assert len(results["nas_pick"]["runs"]) == 2  # the record itself is not changed
    only_own = {**results, "nas_pick": {"runs": results["nas_pick"]["runs"][:1]}}
    assert paired_vs_pick(only_own, retrained_only=True) == {}  # nothing retrained: nothing to pair


def test_each_pairing_says_which_machines_its_rows_ran_on():
    """Rows timed on machines 1.6x apart must show it in the pairing; a row not timed (the run's own
    model, a row older than the measurement) is None and leaves the spread unknown, not small."""
    patients = {f"patient{i:03d}": (0.80, 0.78) for i in range(8)}

    def row(seed, step):
        return {"seed": seed, "per_case_dice": _frames(patients),
                **({"machine_speed": {"pick_bare_step_s_here": step}} if step else {})}
    results = {"nas_pick": {"runs": [{"seed": 0, "source": "run/best/model.pt", "per_case_dice": _frames(patients)},
                                     row(1, 1.6), row(2, 1.5)]},
               "monai_unet": {"runs": [row(0, None), row(1, 1.0)]}}
    pooled = paired_vs_pick(results)["monai_unet"]
    assert pooled["bare_step_s"] == {"nas_pick": [None, 1.6, 1.5], "monai_unet": [None, 1.0]}
    assert pooled["machine_spread"] is None  # two rows' machines are unknown
    timed = paired_vs_pick(results, retrained_only=True)["monai_unet"]
    assert timed["machine_spread"] is None  # still one untimed peer row
    apart = paired_vs_pick({**results, "monai_unet": {"runs": [row(1, 1.0)]}}, retrained_only=True)["monai_unet"]
    assert apart["machine_spread"] == pytest.approx(1.6)
    same = paired_vs_pick({**results, "monai_unet": {"runs": [row(0, 1.55)]}}, retrained_only=True)["monai_unet"]
    assert same["bare_step_s"]["nas_pick"] == [1.6, 1.5] and same["machine_spread"] == pytest.approx(1.6 / 1.5, abs=1e-3)
    untimed = paired_vs_pick({"nas_pick": {"runs": [row(1, None)]}, "monai_unet": {"runs": [row(0, None)]}})
    assert untimed["monai_unet"]["machine_spread"] is None


def test_peer_pairs_pairs_a_later_network_against_every_row_with_its_sign(tmp_path, capsys):
    """scripts/peer_pairs.py: NETWORK - other (not other - NETWORK), every other row paired, and
    --retrained-only leaves out the run's own model on the other side too."""
    from tests.script_loader import load_script

    base = {f"patient{i:03d}": (0.80, 0.78) for i in range(8)}

    def shifted(d):
        return _frames({p: (ed + d, es + d) for p, (ed, es) in base.items()})
    results = {"nas_pick": {"runs": [{"seed": 0, "source": "run/best/model.pt", "per_case_dice": shifted(0.10)},
                                     {"seed": 1, "per_case_dice": shifted(0.0)}]},
               "nas_pick_light": {"runs": [{"seed": 1, "per_case_dice": shifted(0.03)}]},
               "small_dynunet": {"runs": [{"seed": s, "per_case_dice": shifted(0.05)} for s in (0, 1)]}}
    record, out = tmp_path / "peers.json", tmp_path / "pairs.json"
    record.write_text(json.dumps({"results": results}))
    script = load_script("peer_pairs")
    assert script.main([str(record), "--network", "nas_pick_light", "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    assert set(got) == {"nas_pick", "small_dynunet"}
    assert got["small_dynunet"]["mean"]["mean"] == pytest.approx(-0.02)
    assert got["nas_pick"]["mean"]["mean"] == pytest.approx(0.03 - 0.05)  # the pick's seeds 0, 1 averaged
    assert "| small_dynunet | 1 | 0,1 | " in capsys.readouterr().out
    script.main([str(record), "--network", "nas_pick_light", "--retrained-only", "--json", str(out)])
    got = json.loads(out.read_text())
    assert got["nas_pick"]["mean"]["mean"] == pytest.approx(0.03) and got["nas_pick"]["seeds"]["nas_pick"] == [1]
    with pytest.raises(SystemExit, match="not in the record"):
        script.main([str(record), "--network", "monai_unet"])


def test_peer_pairs_adds_a_second_runs_row_only_when_it_scored_the_same_cases(tmp_path):
    """--also: a second run's own model paired against the first record's retrained rows (its own
    model row survives --retrained-only); a row scored on other cases stops with the record named."""
    from tests.script_loader import load_script

    base = {f"patient{i:03d}": (0.80, 0.78) for i in range(8)}

    def shifted(d, n=8):
        return _frames({p: (ed + d, es + d) for p, (ed, es) in list(base.items())[:n]})
    first = {"nas_pick": {"runs": [{"seed": 0, "source": "a/best/model.pt", "per_case_dice": shifted(0.10)},
                                   {"seed": 1, "per_case_dice": shifted(0.0)}]}}
    second = {"nas_pick": {"runs": [{"seed": 0, "source": "b/best/model.pt", "per_case_dice": shifted(0.06)}]}}
    a, b, out = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "pairs.json"
    a.write_text(json.dumps({"results": first}))
    b.write_text(json.dumps({"results": second}))
    script = load_script("peer_pairs")
    script.main([str(a), "--network", "light_run", "--also", f"{b}:nas_pick=light_run", "--retrained-only",
                 "--json", str(out)])
    got = json.loads(out.read_text())["nas_pick"]
    assert got["mean"]["mean"] == pytest.approx(0.06) and got["seeds"] == {"light_run": [0], "nas_pick": [1]}
    with pytest.raises(SystemExit, match="already a row"):
        script.main([str(a), "--network", "nas_pick", "--also", f"{b}:nas_pick=nas_pick"])
    second["nas_pick"]["runs"][0]["per_case_dice"] = shifted(0.06, n=7)
    b.write_text(json.dumps({"results": second}))
    with pytest.raises(SystemExit, match="b.json.*other test cases"):
        script.main([str(a), "--network", "light_run", "--also", f"{b}:nas_pick=light_run"])
