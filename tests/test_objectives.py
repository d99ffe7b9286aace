"""f1/f2 on hand-computed results."""

import math

import pytest

from medseg_nas.config import ObjectivesConfig
from medseg_nas.search.objectives import compute_objectives
from medseg_nas.results import TrialResult


def _history(train, val):
    return [{"epoch": e + 1, "train_dice": t, "val_dice": v} for e, (t, v) in enumerate(zip(train, val))]


# six epochs; epoch 2 did not validate (val_every), so "the last 5 validated" are all five others
HISTORY = _history([0.1, 0.5, 0.6, 0.7, 0.8, 0.9], [0.2, None, 0.4, 0.5, 0.6, 0.7])


def test_hand_computed_defaults_last5():
    """Default f1: mean of the last 5 epochs' train and val Dice (the authors), α = β = 0.25."""
    r = TrialResult(status="done", history=HISTORY, train_dice=0.9, val_dice=0.7, e_max=6, epochs_budget=10,
                    n_params=1000)
    f1, f2 = compute_objectives(r, ObjectivesConfig())
    # train: mean(0.5, 0.6, 0.7, 0.8, 0.9) = 0.7; val: mean(0.2, 0.4, 0.5, 0.6, 0.7) = 0.48
    # 0.25·(1 − 0.7) + (1 − 0.48) + 0.25·(10 − 6)/10 = 0.075 + 0.52 + 0.1
    assert f1 == pytest.approx(0.695)
    assert f2 == pytest.approx(math.log(1000))
    assert ObjectivesConfig().beta == 0.25 and ObjectivesConfig().dice_at == "last5"


def test_hand_computed_best():
    """dice_at: best: train and val Dice at e_max."""
    r = TrialResult(status="done", history=HISTORY, train_dice=0.9, val_dice=0.7, e_max=6, epochs_budget=10,
                    n_params=1000)
    f1, _ = compute_objectives(r, ObjectivesConfig(dice_at="best"))
    # 0.25·(1 − 0.9) + (1 − 0.7) + 0.25·(10 − 6)/10 = 0.025 + 0.3 + 0.1
    assert f1 == pytest.approx(0.425)


def test_last5_with_fewer_epochs_uses_what_there_is():
    r = TrialResult(history=_history([0.4, 0.6], [0.3, 0.5]), train_dice=0.6, val_dice=0.5, e_max=2,
                    epochs_budget=2, n_params=10)
    assert compute_objectives(r, ObjectivesConfig())[0] == pytest.approx(0.25 * 0.5 + 0.6)


def test_custom_weights_and_dict_input():
    cfg = ObjectivesConfig(alpha=1.0, beta=0.5, C=0.9, dice_at="best")
    d = {"status": "done", "train_dice": 0.7, "val_dice": 0.5, "e_max": 6, "epochs_budget": 6, "n_params": 7}
    f1, f2 = compute_objectives(TrialResult.from_dict(d), cfg)
    assert f1 == pytest.approx(1.0 * 0.2 + 0.4 + 0.0)
    assert f2 == pytest.approx(math.log(7))


def test_early_peak_is_penalised_and_perfect_net_is_zero():
    cfg = ObjectivesConfig()
    perfect = _history([1.0] * 20, [1.0] * 20)
    late = TrialResult(history=perfect, train_dice=1.0, val_dice=1.0, e_max=20, epochs_budget=20, n_params=10)
    early = TrialResult(history=perfect, train_dice=1.0, val_dice=1.0, e_max=5, epochs_budget=20, n_params=10)
    assert compute_objectives(late, cfg)[0] == pytest.approx(0.0)
    assert compute_objectives(early, cfg)[0] == pytest.approx(0.25 * 15 / 20)


@pytest.mark.parametrize(
    "kw",
    [
        {"status": "failed", "error": "boom"},
        {"epochs_budget": 0},
        {"e_max": 11},
        {"n_params": None},
        {"val_dice": float("nan")},
        {"history": []},  # last5 needs the per-epoch history
        {"history": _history([0.5] * 3, [None] * 3)},  # ... with validated epochs
    ],
)
def test_invalid_results_raise(kw):
    base = dict(status="done", history=_history([0.5] * 3, [0.5] * 3), train_dice=0.5, val_dice=0.5, e_max=3,
                epochs_budget=10, n_params=100)
    compute_objectives(TrialResult(**base), ObjectivesConfig())  # valid as it stands
    base.update(kw)
    with pytest.raises(ValueError):
        compute_objectives(TrialResult(**base), ObjectivesConfig())


def test_f1_from_a_hand_written_validation_history(bundle_and_trainer):
    """Trainer history → e_max, MCDice at e_max, early stopping → f1, checked by hand.

    Validation Dice per class by epoch (injected): mean 0.3, 0.55, 0.55, 0.3, 0.1 → the best is
    epoch 2 (the later tie does not move it); patience 3 stops after epoch 5 of a 10-epoch budget.
    Default (last5): f1 = 0.25·(1 − mean train MCDice of epochs 1-5) + (1 − 0.36) + 0.25·(10 − 2)/10;
    best: f1 = 0.25·(1 − train MCDice at epoch 2) + (1 − 0.55) + 0.25·(10 − 2)/10.
    """
    Trainer, bundle, genome = bundle_and_trainer
    scores = iter([[0.2, 0.4], [0.6, 0.5], [0.5, 0.6], [0.3, 0.3], [0.1, 0.1]])
    from medseg_nas.config import TrainConfig

    t = Trainer(TrainConfig(epochs=10, iters_per_epoch=1, batch_size=2, patience=3, val_every=1), bundle, bundle.plan,
                device="cpu", progress=False)
    t._validate = lambda *a: next(scores)
    r = t.fit(genome, seed=0)
    assert r.status == "done", r.error
    assert (r.e_max, r.epochs_run, r.epochs_budget) == (2, 5, 10)
    assert r.val_dice == pytest.approx(0.55) and r.val_dice_per_class == {"1": 0.6, "2": 0.5}
    row = r.history[1]
    assert row["train_dice"] == pytest.approx(sum(row["train_dice_per_class"].values()) / 2)  # MCDice: mean of classes
    mean_train = sum(h["train_dice"] for h in r.history) / 5
    f1, f2 = compute_objectives(r, ObjectivesConfig())
    assert f1 == pytest.approx(0.25 * (1 - mean_train) + 0.64 + 0.2)
    assert f2 == pytest.approx(math.log(r.n_params))
    assert compute_objectives(TrialResult.from_dict(r.to_dict()), ObjectivesConfig()) == (f1, f2)  # the stored dict gives the same
    best, _ = compute_objectives(r, ObjectivesConfig(dice_at="best"))
    assert best == pytest.approx(0.25 * (1 - row["train_dice"]) + 0.45 + 0.2)


@pytest.fixture
def bundle_and_trainer():
    from medseg_nas.space import Genome
    from medseg_nas.train import Trainer
    from medseg_nas.testing.toy import ToyBundle

    bundle = ToyBundle(n_train=2, n_val=1, shape=(16, 16, 16), patch=(16, 16, 16), seed=0)
    return Trainer, bundle, Genome(ops=("conv3d_1",) * 4, n_c=2, n_f=3, lr=1e-3)
