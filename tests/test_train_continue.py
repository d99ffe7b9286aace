"""Trainer continuation for successive halving: a trial stopped at a rung goes on from its saved
state (weights, optimiser, schedule position, history), not from scratch."""

import pytest
import torch

from medseg_nas.config import TrainConfig
from medseg_nas.space import Genome
from medseg_nas.testing.toy import ToyBundle
from medseg_nas.train import Trainer
from medseg_nas.train.checkpoint import StateUnreadable, load_state

GENOME = Genome(inputs=(0, 1, 2), ops=("conv3d_3", "conv2d_3", "identity", "identity"), n_c=2, n_f=3, lr=3e-3)


@pytest.fixture(scope="module")
def bundle():
    return ToyBundle(n_train=4, n_val=2, shape=(24, 24, 24), patch=(16, 16, 16), seed=0)


def trainer(bundle):
    cfg = TrainConfig(epochs=3, iters_per_epoch=3, batch_size=2, patience=0, val_every=1, sw_batch_size=4)
    return Trainer(cfg, bundle, bundle.plan, device="cpu", progress=False)


def expect(seed=0):
    return {"genome": GENOME.key(), "seed": seed, "epochs": 3, "iters_per_epoch": 3}


def test_a_continued_trial_keeps_its_schedule_and_history(bundle, tmp_path):
    t = trainer(bundle)
    full = t.fit(GENOME, seed=0)
    first = t.fit(GENOME, seed=0, until=1, save_to=tmp_path / "s.pt")
    assert first.ok and first.epochs_run == 1 and first.epochs_budget == 1
    # epoch 1 is the uninterrupted trial's epoch 1: the schedule spans all 3 epochs, not 1
    assert first.history[0]["lr"] == pytest.approx(full.history[0]["lr"])
    assert first.history[0]["loss"] == pytest.approx(full.history[0]["loss"])
    state = load_state(tmp_path / "s.pt", expect())
    assert state.epochs_done == 1 and state.scheduler["last_epoch"] == 3
    rest = t.fit(GENOME, seed=0, resume=state, save_to=tmp_path / "s.pt")
    assert rest.ok and rest.epochs_run == 3 and rest.epochs_budget == 3
    assert rest.history[0] == first.history[0]  # the first rung's epoch is kept, not retrained
    assert rest.timing["steps"] == 6  # only the two new epochs were trained
    # the learning rate goes on from step 3 of 9 (poly decay), as in the uninterrupted trial
    assert [h["lr"] for h in rest.history] == pytest.approx([h["lr"] for h in full.history])
    # and the weights went on from the saved ones: a restart from scratch would not reach the
    # same training loss as quickly (with the same data order it would repeat epoch 1's loss)
    assert rest.history[1]["loss"] != pytest.approx(first.history[0]["loss"])
    assert load_state(tmp_path / "s.pt", expect()).epochs_done == 3


def test_a_state_for_another_trial_or_a_broken_file_is_unreadable(bundle, tmp_path):
    t = trainer(bundle)
    t.fit(GENOME, seed=0, until=1, save_to=tmp_path / "s.pt")
    with pytest.raises(StateUnreadable, match="another trial.*seed"):
        load_state(tmp_path / "s.pt", expect(seed=1))
    with pytest.raises(StateUnreadable, match="does not exist"):
        load_state(tmp_path / "missing.pt", expect())
    (tmp_path / "bad.pt").write_bytes((tmp_path / "s.pt").read_bytes()[:100])
    with pytest.raises(StateUnreadable, match="not a readable"):
        load_state(tmp_path / "bad.pt", expect())


def test_nothing_left_to_train_is_a_failed_trial(bundle, tmp_path):
    t = trainer(bundle)
    done = t.fit(GENOME, seed=0, until=1, save_to=tmp_path / "s.pt")
    again = t.fit(GENOME, seed=0, until=1, resume=load_state(tmp_path / "s.pt", expect()))
    assert done.ok and not again.ok and "nothing to train" in again.error
    with pytest.raises(ValueError, match="wall-clock"):
        t.fit(GENOME, seed=0, until=1, seconds=5.0)
