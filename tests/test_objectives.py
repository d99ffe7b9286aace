"""f1/f2 on hand-computed results."""

import math

import pytest

from medseg_nas.config import ObjectivesConfig
from medseg_nas.search.objectives import compute_objectives
from medseg_nas.train import TrialResult


def test_hand_computed_defaults():
    r = TrialResult(status="done", train_dice=0.8, val_dice=0.6, e_max=5, epochs_budget=10, n_params=1000)
    f1, f2 = compute_objectives(r, ObjectivesConfig())
    # 0.25·(1−0.8) + (1−0.6) + 0.1·(10−5)/10 = 0.05 + 0.4 + 0.05
    assert f1 == pytest.approx(0.5)
    assert f2 == pytest.approx(math.log(1000))


def test_custom_weights_and_dict_input():
    cfg = ObjectivesConfig(alpha=1.0, beta=0.5, C=0.9)
    d = {"status": "done", "train_dice": 0.7, "val_dice": 0.5, "e_max": 6, "epochs_budget": 6, "n_params": 7}
    f1, f2 = compute_objectives(d, cfg)
    assert f1 == pytest.approx(1.0 * 0.2 + 0.4 + 0.0)
    assert f2 == pytest.approx(math.log(7))


def test_early_peak_is_penalised_and_perfect_net_is_zero():
    cfg = ObjectivesConfig()
    late = TrialResult(train_dice=1.0, val_dice=1.0, e_max=20, epochs_budget=20, n_params=10)
    early = TrialResult(train_dice=1.0, val_dice=1.0, e_max=5, epochs_budget=20, n_params=10)
    assert compute_objectives(late, cfg)[0] == pytest.approx(0.0)
    assert compute_objectives(early, cfg)[0] == pytest.approx(0.1 * 15 / 20)


@pytest.mark.parametrize(
    "kw",
    [
        {"status": "failed", "error": "boom"},
        {"epochs_budget": 0},
        {"e_max": 11},
        {"n_params": None},
        {"val_dice": float("nan")},
    ],
)
def test_invalid_results_raise(kw):
    base = dict(status="done", train_dice=0.5, val_dice=0.5, e_max=3, epochs_budget=10, n_params=100)
    base.update(kw)
    with pytest.raises(ValueError):
        compute_objectives(TrialResult(**base), ObjectivesConfig())
