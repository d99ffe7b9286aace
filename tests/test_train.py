"""Trainer: learns the phantom set, deterministic on CPU, failures are data, logging, results."""

import json

import numpy as np
import pytest
import torch

from medseg_nas.config import TrainConfig
from medseg_nas.space import Genome, build_network
from medseg_nas.results import TrialResult
from medseg_nas.train import Trainer
from medseg_nas.train.layout import GroupInstanceNorm3d, swap_instance_norm
from medseg_nas.train import trainer as trainer_mod
from medseg_nas.testing.toy import ToyBundle

GENOME = Genome(inputs=(0, 1, 2), ops=("conv3d_3", "conv2d_3", "identity", "identity"), n_c=2, n_f=3, lr=3e-3)


@pytest.fixture(scope="module")
def bundle():
    return ToyBundle(n_train=4, n_val=2, shape=(24, 24, 24), patch=(16, 16, 16), seed=0)


def cfg(**kw):
    base = dict(epochs=2, iters_per_epoch=2, batch_size=2, patience=0, val_every=1, sw_batch_size=4)
    base.update(kw)
    return TrainConfig(**base)


def test_learns_phantoms(bundle):
    r = Trainer(cfg(epochs=5, iters_per_epoch=6), bundle, bundle.plan, device="cpu", progress=False).fit(GENOME, seed=0)
    assert r.status == "done", r.error
    assert r.epochs_run == 5 and r.epochs_budget == 5 and len(r.history) == 5
    assert r.val_dice > 0.6  # chance (random labels) is ~0.3 here
    assert 1 <= r.e_max <= 5
    assert r.val_dice == pytest.approx(r.history[r.e_max - 1]["val_dice"])
    assert r.train_dice == pytest.approx(r.history[r.e_max - 1]["train_dice"])
    assert set(r.val_dice_per_class) == {"1", "2"}
    assert r.n_params == sum(p.numel() for p in build_network(GENOME, 1, 3).parameters())
    assert r.timing["steps"] == 30 and 0 <= r.timing["data_wait_fraction"] < 1
    assert r.seconds > 0 and r.peak_mem_mb > 0
    # best weights load into a plain network (same keys as the unmodified InstanceNorm net)
    net = build_network(GENOME, 1, 3)
    net.load_state_dict(r.state_dict)


def test_deterministic_on_cpu(bundle):
    t = Trainer(cfg(epochs=1, iters_per_epoch=3), bundle, bundle.plan, device="cpu", progress=False)
    torch.manual_seed(123)
    before = torch.rand(1).item()
    torch.manual_seed(123)
    a = t.fit(GENOME, seed=7)
    after = torch.rand(1).item()
    b = t.fit(GENOME, seed=7)
    c = t.fit(GENOME, seed=8)
    assert before == after  # the caller's RNG state is left alone
    strip = lambda h: [{k: v for k, v in row.items() if k != "seconds"} for row in h]  # noqa: E731
    assert strip(a.history) == strip(b.history)
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert strip(a.history) != strip(c.history)


def test_trains_when_the_caller_disabled_autograd(bundle):
    t = Trainer(cfg(epochs=1, iters_per_epoch=1), bundle, bundle.plan, device="cpu", progress=False)
    with torch.no_grad():
        r = t.fit(GENOME, seed=0)
    assert r.status == "done", r.error
    assert torch.is_grad_enabled()


def test_nan_loss_is_a_failed_trial():
    bad = ToyBundle(n_train=2, n_val=1, shape=(16, 16, 16), patch=(16, 16, 16), seed=1)
    for case in bad.train.data:
        case["image"][:] = np.nan
    r = Trainer(cfg(), bad, bad.plan, device="cpu", progress=False).fit(GENOME, seed=0)
    assert r.status == "failed" and "non-finite loss" in r.error and "epoch 1, iteration 1" in r.error
    assert r.state_dict is None
    json.dumps(r.to_dict())


def test_oom_is_a_failed_trial(bundle, monkeypatch):
    class Boom(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(trainer_mod.NetworkSpec, "build", lambda *a, **k: Boom())
    t = Trainer(cfg(), bundle, bundle.plan, device="cpu", progress=False)
    r = t.fit(GENOME, seed=0)
    assert r.status == "failed" and r.error.startswith("CUDA out of memory") and "epoch 1" in r.error
    monkeypatch.undo()
    assert t.fit(GENOME, seed=0, epochs=1, iters_per_epoch=1).status == "done"  # trainer still usable


def test_patch_not_divisible_is_a_failed_trial():
    b = ToyBundle(n_train=2, n_val=1, shape=(20, 20, 20), patch=(18, 16, 16), seed=2)
    r = Trainer(cfg(), b, b.plan, device="cpu", progress=False).fit(GENOME, seed=0)
    assert r.status == "failed" and "multiple of" in r.error


def test_any_exception_is_a_failed_trial(bundle, monkeypatch):
    def broken(*a, **k):
        raise KeyError("weird")

    monkeypatch.setattr(trainer_mod.NetworkSpec, "build", broken)
    r = Trainer(cfg(), bundle, bundle.plan, device="cpu", progress=False).fit(GENOME, seed=0)
    assert r.status == "failed" and "KeyError" in r.error and "setup" in r.error


def test_early_stopping_and_val_every(bundle, monkeypatch):
    scores = iter([0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    monkeypatch.setattr(Trainer, "_validate", lambda self, *a: [next(scores)] * 2)
    r = Trainer(cfg(epochs=10, iters_per_epoch=1, patience=2), bundle, bundle.plan, device="cpu", progress=False).fit(GENOME, 0)
    assert r.status == "done" and r.e_max == 1 and r.epochs_run == 3 and r.epochs_budget == 10
    scores = iter([0.1, 0.2, 0.3])
    r = Trainer(cfg(epochs=5, iters_per_epoch=1, val_every=2), bundle, bundle.plan, device="cpu", progress=False).fit(GENOME, 0)
    assert [h["val_dice"] is not None for h in r.history] == [False, True, False, True, True]
    assert r.e_max == 5 and r.val_dice == pytest.approx(0.3)


def test_tensorboard_and_silent_progress(bundle, tmp_path, capsys):
    r = Trainer(cfg(epochs=1, iters_per_epoch=1), bundle, bundle.plan, device="cpu", log_dir=tmp_path / "tb",
                progress=False).fit(GENOME, seed=0)
    assert r.status == "done", r.error
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_result_json_round_trip(bundle):
    r = Trainer(cfg(epochs=1, iters_per_epoch=1), bundle, bundle.plan, device="cpu", progress=False).fit(GENOME, seed=0)
    d = r.to_dict()
    assert "state_dict" not in d
    back = TrialResult.from_json(r.to_json())
    assert back.to_dict() == d and back.state_dict is None
    assert TrialResult(status="failed", error="x", seconds=1.0).to_dict()["status"] == "failed"


def test_group_norm_swap_is_exact():
    torch.manual_seed(0)
    net = build_network(GENOME, 1, 3).eval()
    x = torch.randn(1, 1, 16, 16, 16)
    ref = net(x)
    n = swap_instance_norm(net)
    assert n > 0 and any(isinstance(m, GroupInstanceNorm3d) for m in net.modules())
    out = net.to(memory_format=torch.channels_last_3d)(x.contiguous(memory_format=torch.channels_last_3d))
    assert torch.allclose(ref, out, atol=1e-4)
    assert set(net.state_dict()) == set(build_network(GENOME, 1, 3).state_dict())


def test_cuda_request_without_cuda_fails_early(bundle):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    from medseg_nas.errors import ConfigError

    with pytest.raises(ConfigError):
        Trainer(cfg(), bundle, bundle.plan, device="cuda")


class _TickClock:
    """A clock that advances `dt` seconds each time it is read: the budget logic without real time."""

    def __init__(self, dt: float) -> None:
        self.t, self.dt = 0.0, dt

    def __call__(self) -> float:
        self.t += self.dt
        return self.t


def test_wall_clock_budget_stops_in_time_and_decays_the_lr(bundle):
    clock = _TickClock(0.1)
    t = Trainer(cfg(val_every=1), bundle, bundle.plan, device="cpu", progress=False, clock=clock)
    r = t.fit(GENOME, seed=0, epochs=1000, iters_per_epoch=4, seconds=6.0)
    assert r.status == "done", r.error
    assert 1 < r.epochs_run < 1000  # the clock, not the epoch cap, ended it
    assert clock.t <= 6.0 + 1.0  # stopped inside the budget (a few reads of slack)
    last = r.history[-1]
    assert last["val_dice"] is not None  # the final, possibly partial epoch is validated
    lrs = [row["lr"] for row in r.history]
    assert lrs[-1] < 0.35 * GENOME.lr and lrs[-1] < max(lrs)  # poly decay followed the clock to near 0
    assert r.val_dice == pytest.approx(r.history[r.e_max - 1]["val_dice"])


def test_wall_clock_budget_real_time_and_epoch_cap(bundle):
    t = Trainer(cfg(), bundle, bundle.plan, device="cpu", progress=False)
    r = t.fit(GENOME, seed=0, epochs=10_000, iters_per_epoch=3, seconds=3.0)
    assert r.status == "done", r.error
    assert r.epochs_run < 10_000 and r.seconds < 3.0 + 20.0
    capped = t.fit(GENOME, seed=0, epochs=2, iters_per_epoch=2, seconds=3600.0)
    assert capped.epochs_run == 2 and capped.timing["steps"] == 4  # the cap ends a long budget
    bad = t.fit(GENOME, seed=0, seconds=0.0)
    assert bad.status == "failed" and "seconds" in bad.error
