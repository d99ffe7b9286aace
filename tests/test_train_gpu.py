"""Trainer on CUDA (mixed precision, OOM recovery); skipped without a GPU."""

import pytest
import torch

from medseg_nas.config import TrainConfig
from medseg_nas.space import Genome
from medseg_nas.train import Trainer
from medseg_nas.testing.toy import ToyBundle

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

GENOME = Genome(inputs=(0, 1, 2), ops=("conv3d_3", "conv2d_3", "identity", "identity"), n_c=2, n_f=3, lr=3e-3)


@pytest.mark.parametrize("amp", [True, False])
def test_cuda_fit(amp):
    b = ToyBundle(n_train=4, n_val=2, shape=(32, 32, 32), patch=(16, 16, 16))
    cfg = TrainConfig(epochs=4, iters_per_epoch=8, batch_size=2, patience=0, amp=amp)
    r = Trainer(cfg, b, b.plan, device="cuda", progress=False).fit(GENOME, seed=0)
    assert r.status == "done", r.error
    assert r.peak_mem_mb > 0 and r.val_dice > 0.3
    assert all(t.device.type == "cpu" for t in r.state_dict.values())


def test_cuda_oom_is_failed_and_memory_is_freed():
    b = ToyBundle(n_train=2, n_val=1, shape=(32, 32, 32), patch=(16, 16, 16))
    cfg = TrainConfig(epochs=1, iters_per_epoch=1, batch_size=2, patience=0)
    t = Trainer(cfg, b, b.plan, device="cuda", progress=False)
    before = torch.cuda.memory_allocated()
    free = torch.cuda.mem_get_info()[0]
    b.plan.patch_size = (16, 16, 16)
    huge = int(free * 2 // (4 * 2 * 16**3))  # more channels than fit: forces an OOM in the first conv

    class Hog(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return x.new_empty((x.shape[0], huge) + tuple(x.shape[2:]))

    t.network_fn = lambda genome: Hog()  # the trainer's own hook for networks that are not genomes
    r = t.fit(GENOME, seed=0)
    assert r.status == "failed" and "out of memory" in r.error.lower()
    assert torch.cuda.memory_allocated() <= before + 2**20
    t.network_fn = None
    assert t.fit(GENOME, seed=0).status == "done"
