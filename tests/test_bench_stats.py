"""The paired per-case comparison the ablations state their claims with (bench/stats.py)."""

import pytest

from medseg_nas.bench.stats import paired_against


def _row(variant, seed, means):
    return {"variant": variant, "seed": seed, "per_case_dice": {f"c{i}": {"mean": m} for i, m in enumerate(means)}}


def test_paired_against_averages_seeds_per_case_and_bounds_the_difference():
    rows = [_row("base", 0, [0.8, 0.7, 0.9, 0.6]), _row("base", 1, [0.82, 0.72, 0.88, 0.62]),
            _row("worse", 0, [0.7, 0.6, 0.8, 0.5]), _row("worse", 1, [0.72, 0.6, 0.78, 0.52]),
            _row("one_seed", 1, [0.82, 0.72, 0.88, 0.62]), {"variant": "failed", "seed": 0}]
    out = paired_against(rows, "base")
    assert set(out) == {"worse", "one_seed"}  # the control and rows without per-case Dice are not compared
    w = out["worse"]
    assert w["mean"] == pytest.approx(-0.1025, abs=1e-4) and w["seeds"] == [0, 1] and w["n_cases"] == 4
    assert w["low"] <= w["mean"] <= w["high"] < 0
    same = out["one_seed"]  # only seed 1 is shared, and it is identical to base's seed 1
    assert same["seeds"] == [1] and same["mean"] == 0 and same["low"] == same["high"] == 0
    assert paired_against(rows, "absent") == {}


def test_compare_pairs_only_the_figures_every_row_has():
    """Rows scored before a figure existed (mean_largest_component) pair with newer rows on the
    figures they share, instead of failing on the missing key."""
    from medseg_nas.bench.stats import compare

    old = {f"c{i}": {"a": 0.8, "mean": 0.8} for i in range(6)}
    new = {f"c{i}": {"a": 0.9, "mean": 0.9, "mean_largest_component": 0.95} for i in range(6)}
    out = compare({"full": {0: old}, "3d": {0: new, 1: new}})
    assert set(out["3d-full"]) == {"a", "mean", "verdict"}
    assert out["3d-full"]["mean"]["mean"] == pytest.approx(0.1)
