"""Integration: the Trainer on a real medseg_nas.data DataBundle (synthetic MSD phantoms on disk)."""

import pytest

from data_prep import synthetic
from medseg_nas.config import DataConfig, TrainConfig
from medseg_nas.data import build_datasets, compute_fingerprint, load_datalist, make_plan, make_split
from medseg_nas.space import Genome
from medseg_nas.train import Trainer


def test_trainer_on_data_bundle(tmp_path):
    root = tmp_path / "syn"
    synthetic.generate(root, cases=5, seed=0)
    cfg = DataConfig(val_fraction=0.2, test_fraction=0.2, augment="light")
    dl = load_datalist(root)
    split = make_split(dl, seed=0, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction)
    plan = make_plan(compute_fingerprint(root, dl), cfg)
    bundle = build_datasets(dl, split, plan, cfg)
    genome = Genome(inputs=(0, 0, 1), ops=("conv2d_3", "p3d_3", "identity", "conv3d_1"), n_c=2, n_f=3, lr=3e-3)
    tcfg = TrainConfig(epochs=2, iters_per_epoch=1, batch_size=2, patience=0)
    trainer = Trainer(tcfg, bundle, plan, device="cpu", progress=False)
    a = trainer.fit(genome, seed=3)
    assert a.status == "done", a.error
    assert a.epochs_run == 2 and a.history[-1]["val_dice"] is not None
    assert set(a.val_dice_per_class) == {str(k) for k in range(1, plan.n_classes)}
    b = trainer.fit(genome, seed=3)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]  # reproducible with the real pipeline
    assert a.val_dice == pytest.approx(b.val_dice)
