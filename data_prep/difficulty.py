"""Is a prepared dataset hard enough that architectures differ? A small, fixed training probe.

    python -m data_prep.difficulty DATA_ROOT --ops conv3d_1 --seconds 90
    python -m data_prep.difficulty DATA_ROOT --ops conv3d_3 --seconds 90

Trains one EMONAS genome (all four nodes = --ops) for a wall-clock budget on random patches
with Dice+CE, then reports the mean foreground Dice on the validation cases (sliding window).
A measurement tool for the embedded dataset, not the project's Trainer.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def probe(root: str, op: str, seconds: float, iters: int = 0, n_c: int = 2, n_f: int = 3, spacing=(3.0, 3.0, 3.0),
          patch=(48, 48, 48), lr: float = 3e-3, seed: int = 0) -> dict:
    from monai.inferers import sliding_window_inference
    from monai.losses import DiceCELoss
    from monai.metrics import DiceMetric
    from monai.networks.utils import one_hot

    from medseg_nas.config import DataConfig
    from medseg_nas.data import build_datasets, compute_fingerprint, load_datalist, make_plan, make_split
    from medseg_nas.space.genome import Genome
    from medseg_nas.space.network import build_network, count_parameters

    torch.manual_seed(seed)
    cfg = DataConfig(target_spacing=list(spacing), patch_size=list(patch), augment="light")
    dl = load_datalist(root)
    split = make_split(dl, seed=0, val_fraction=0.2, test_fraction=0.2)
    plan = make_plan(compute_fingerprint(root, dl), cfg)
    bundle = build_datasets(dl, split, plan, cfg)
    bundle.reseed(seed)
    genome = Genome(inputs=(1, 2, 3), ops=(op,) * 4, n_c=n_c, n_f=n_f, lr=lr)
    net = build_network(genome, plan.in_channels, plan.n_classes, plan.network_plan)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    loader = bundle.train_loader(batch_size=2, num_samples=10**6, seed=seed)
    t0, it = time.perf_counter(), 0
    net.train()
    for batch in loader:
        opt.zero_grad()
        loss = loss_fn(net(batch["image"]), batch["label"])
        loss.backward()
        opt.step()
        it += 1
        if time.perf_counter() - t0 > seconds or (iters and it >= iters):
            break
    train_s = time.perf_counter() - t0
    net.eval()
    metric = DiceMetric(include_background=False, reduction="mean_batch")
    with torch.no_grad():
        for i in range(len(bundle.val)):
            v = bundle.val[i]
            logits = sliding_window_inference(v["image"][None].as_tensor(), list(patch), 2, net, overlap=0.25)
            pred = one_hot(logits.argmax(1, keepdim=True), plan.n_classes)
            metric(pred, one_hot(v["label"][None].as_tensor().long(), plan.n_classes))
    per_class = metric.aggregate().tolist()
    return {"op": op, "n_c": n_c, "n_f": n_f, "patch": list(patch), "iters": it, "train_s": round(train_s, 1),
            "n_params": count_parameters(genome, plan.in_channels, plan.n_classes, plan.network_plan),
            "val_dice_per_class": [round(d, 4) for d in per_class], "val_dice": round(sum(per_class) / len(per_class), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root")
    ap.add_argument("--ops", default="conv3d_3")
    ap.add_argument("--seconds", type=float, default=90)
    ap.add_argument("--n-c", type=int, default=2)
    ap.add_argument("--n-f", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iters", type=int, default=0, help="stop after N iterations (0: time budget only)")
    ap.add_argument("--patch", type=int, default=48)
    a = ap.parse_args()
    torch.set_num_threads(1)
    print(json.dumps(probe(a.root, a.ops, a.seconds, a.iters, a.n_c, a.n_f, patch=(a.patch,) * 3, seed=a.seed)))


if __name__ == "__main__":
    main()
