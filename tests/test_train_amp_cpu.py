"""The mixed-precision path of the Trainer, run on CPU so it cannot rot where CI has no GPU.

The device policy never autocasts on CPU (`precision_for`); these tests force the CUDA
branches — bf16 autocast without a scaler, fp16 autocast with torch.amp's GradScaler — through
`Trainer(precision=...)` on a tiny network, and check that the steps really ran in reduced
precision, the losses stayed finite and the weights moved.
"""

import math

import pytest
import torch

from medseg_nas.config import TrainConfig
from medseg_nas.space import Genome, build_network
from medseg_nas.train import Precision, Trainer, precision_for
from medseg_nas.train import trainer as trainer_mod
from medseg_nas.testing.toy import ToyBundle

GENOME = Genome(inputs=(0, 1, 2), ops=("conv3d_3", "conv2d_3", "identity", "identity"), n_c=2, n_f=3, lr=3e-3)


def test_policy_is_fp32_on_cpu_and_mixed_on_cuda_only():
    assert precision_for(torch.device("cpu"), amp=True) == Precision(autocast=False)
    assert precision_for(torch.device("cpu"), amp=False) == Precision(autocast=False)


@pytest.mark.parametrize("precision", [
    Precision(autocast=True, dtype=torch.bfloat16),
    Precision(autocast=True, dtype=torch.float16, grad_scaler=True),
], ids=["bf16", "fp16+GradScaler"])
def test_amp_path_trains_on_cpu(precision, monkeypatch):
    bundle = ToyBundle(n_train=2, n_val=1, shape=(16, 16, 16), patch=(16, 16, 16), seed=0)
    seen: dict = {"dtypes": set(), "init": None, "scalers": []}

    def network_fn(genome):
        net = build_network(genome, int(bundle.plan.in_channels), int(bundle.plan.n_classes), bundle.plan.network_plan)
        seen["init"] = {k: v.detach().clone() for k, v in net.state_dict().items()}
        net.register_forward_hook(lambda m, i, o: seen["dtypes"].add(o.dtype))
        return net

    real_scaler = torch.amp.GradScaler

    def recording_scaler(*a, **k):
        s = real_scaler(*a, **k)
        seen["scalers"].append(s)
        return s

    monkeypatch.setattr(trainer_mod.torch.amp, "GradScaler", recording_scaler)
    cfg = TrainConfig(epochs=2, iters_per_epoch=2, batch_size=1, patience=0, val_every=1, sw_batch_size=1)
    r = Trainer(cfg, bundle, bundle.plan, device="cpu", progress=False, channels_last=False,
                network_fn=network_fn, precision=precision).fit(GENOME, seed=0)
    assert r.status == "done", r.error
    assert precision.dtype in seen["dtypes"]  # the forward ran under autocast
    assert all(math.isfinite(h["loss"]) for h in r.history)
    assert len(seen["scalers"]) == 1 and seen["scalers"][0].is_enabled() is precision.grad_scaler
    moved = [k for k, v in r.state_dict.items() if v.is_floating_point() and not torch.equal(v, seen["init"][k])]
    assert moved, "no weight changed"
