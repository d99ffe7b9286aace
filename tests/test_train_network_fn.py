"""Trainer(network_fn=...): a hand-designed network trained with the same recipe as a genome."""

from dataclasses import dataclass

import torch
from monai.networks.nets import UNet

from medseg_nas.config import TrainConfig
from medseg_nas.space import Genome
from medseg_nas.train import Trainer
from medseg_nas.testing.toy import ToyBundle


@dataclass(frozen=True)
class Spec:
    lr: float = 3e-3
    n_c: int = 2

    def key(self) -> str:
        return "unet"


def test_network_fn_trains_a_monai_unet_and_default_is_unchanged():
    bundle = ToyBundle(n_train=4, n_val=2, shape=(24, 24, 24), patch=(16, 16, 16), seed=0)
    cfg = TrainConfig(epochs=2, iters_per_epoch=2, batch_size=2, patience=0, val_every=1, sw_batch_size=4)
    built = []

    def make(spec):
        built.append(spec)
        return UNet(3, 1, 3, channels=(8, 16, 32), strides=(2, 2), norm=("instance", {"affine": True}))

    r = Trainer(cfg, bundle, bundle.plan, device="cpu", progress=False, network_fn=make).fit(Spec(), seed=0)
    assert r.status == "done", r.error
    assert built == [Spec()] and r.epochs_run == 2
    ref = UNet(3, 1, 3, channels=(8, 16, 32), strides=(2, 2), norm=("instance", {"affine": True}))
    assert r.n_params == sum(p.numel() for p in ref.parameters())
    assert set(r.state_dict) == set(ref.state_dict())
    # without network_fn the genome is built as before
    g = Genome(n_c=2, n_f=3, lr=3e-3)
    t = Trainer(cfg, bundle, bundle.plan, device="cpu", progress=False)
    assert t.network_fn is None and sum(p.numel() for p in t.build(g).parameters()) > 0
    assert isinstance(r.state_dict[next(iter(r.state_dict))], torch.Tensor)
