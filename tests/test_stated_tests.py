"""The strategy comparison's stated tests (issue 27): Holm's correction, the one-sided direction,
power, trials-to-target over all seeds, and a plan that cannot change after the first run."""

import json

import numpy as np
import pytest

from medseg_nas.bench.stated_tests import (StatedTests, check_plan, holm, paired_trials_to_target, trials_to_target,
                                          versus_control)


def test_holm_matches_the_hand_computed_step_down():
    # sorted 0.01, 0.03, 0.04 -> x3, x2, x1 = 0.03, 0.06, 0.04 -> monotone: 0.03, 0.06, 0.06
    assert holm({"a": 0.01, "b": 0.04, "c": 0.03}) == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})
    assert holm({"a": 0.6, "b": 0.7}) == pytest.approx({"a": 1.0, "b": 1.0})  # capped at 1


def test_versus_control_is_one_sided_corrected_and_powered():
    rng = np.random.default_rng(0)
    ctrl = list(0.50 + 0.02 * rng.standard_normal(15))
    finals = {"random": ctrl,
              "better": list(0.60 + 0.02 * rng.standard_normal(15)),   # clearly above the control
              "worse": list(0.40 + 0.02 * rng.standard_normal(15)),    # clearly below: one-sided -> no
              "same": list(0.50 + 0.02 * rng.standard_normal(15))}
    out = versus_control(finals, StatedTests(power_resamples=400))
    per = out["per_variant"]
    assert set(per) == {"better", "worse", "same"}
    assert per["better"]["reject"] and per["better"]["power"] > 0.9 and per["better"]["a12"] > 0.95
    assert not per["worse"]["reject"] and per["worse"]["p"] > 0.99  # the direction is "greater"
    assert not per["same"]["reject"] and per["same"]["power"] < 0.5
    assert per["same"]["seeds_for_power"] is None or per["same"]["seeds_for_power"] > 15
    assert out["bonferroni_level_for_power"] == pytest.approx(0.05 / 3)
    for t in per.values():  # Holm never lowers a p-value
        assert t["p_adjusted"] >= t["p"] - 1e-12
    assert "error" in versus_control({"a": [1.0]}, StatedTests())  # no control run: said, not a crash


def test_few_seeds_of_a_real_effect_ask_for_more_seeds():
    # overlapping samples, the variant ahead by about half a standard deviation
    finals = {"random": [0.50, 0.52, 0.48, 0.55, 0.45], "s": [0.53, 0.49, 0.56, 0.51, 0.54]}
    t = versus_control(finals, StatedTests(power_resamples=400))["per_variant"]["s"]
    assert t["power"] < 0.8 and (t["seeds_for_power"] is None or t["seeds_for_power"] > 5)


def test_trials_to_target_counts_unreached_seeds_as_the_budget():
    t = trials_to_target([[0.1, 0.5, 0.9], [0.1, 0.2, 0.3], [0.9, 0.9, 0.9]], target=0.8, budget=3)
    assert t["trials_to_target"] == [3, None, 1] and t["reached"] == 2 and t["censored_at_budget"] == 1
    assert t["mean_trials_all_seeds"] == pytest.approx((3 + 3 + 1) / 3, abs=0.05)  # not (3 + 1) / 2
    assert t["median_trials_all_seeds"] == 3


def test_the_plan_of_a_work_directory_cannot_change(tmp_path):
    check_plan(tmp_path, StatedTests())
    assert json.loads((tmp_path / "stated_tests.json").read_text())["control"] == "random"
    check_plan(tmp_path, StatedTests())  # the same plan continues
    with pytest.raises(SystemExit, match="stated_tests.json: this work directory's tests were stated"):
        check_plan(tmp_path, StatedTests(alpha=0.1))


def test_paired_trials_to_target_uses_each_seeds_own_target_and_counts_misses_as_the_budget():
    dmls = {0: [0.1, 0.4, 0.5], 1: [0.2, 0.2, 0.3], 2: [0.6, 0.6, 0.6]}  # own final HV at trials 3, 3, 1
    lspon = {0: [0.5, 0.5, 0.5], 1: [0.1, 0.1, 0.2], 2: [0.1, 0.6, 0.9], 3: [1.0, 1.0, 1.0]}
    t = paired_trials_to_target(lspon, dmls, budget=3)
    assert t["seeds"] == [0, 1, 2]  # seed 3 has no DMLS run to pair with
    assert t["trials"] == [1, None, 2] and t["target_trials"] == [3, 3, 1] and t["reached"] == 2
    assert t["sum_trials"] == 1 + 3 + 2 and t["sum_target_trials"] == 7 and t["ratio"] == round(6 / 7, 3)
