"""The rule issue 27's real-data controls are judged by: the sign of the paired difference, the
best small network chosen by its own Dice, and no verdict quoted as final before every arm has
its seeds."""

import numpy as np

from medseg_nas.bench.controls import MIN_SEEDS, study

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
