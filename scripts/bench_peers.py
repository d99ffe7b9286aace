"""NAS-found networks vs the networks users would pick instead (issue 7, part 1).

Every network is trained by the project's `Trainer` (same data pipeline, patch, epochs,
iterations, loss, optimiser recipe, schedule and training seed) and scored on the held-out test
split of the same `make_split`:

- `monai_unet`     MONAI UNet, the standard 4-level configuration of the MONAI tutorials
                   (channels 16-32-64-128-256, 2 residual units, strides from the data plan),
                   affine instance norm;
- `monai_dynunet`  MONAI DynUNet configured as nnU-Net's 3d_fullres planner would for this
                   spacing and patch: a full-resolution first stage, downsampling while the
                   feature map stays >= 4 voxels and the axis is not more than 2x coarser than
                   the finest (the project's `plan_from_spacing`, nnU-Net's rule), 3x3x3 kernels
                   (1 along an axis still > 2x coarser), filters 32·2^i capped at 320, instance
                   norm, LeakyReLU, no deep supervision (the Trainer's loss takes one output);
- `emonas_<name>`  the three published EMONAS-Net genomes (`medseg_nas.space.PUBLISHED_GENOMES`)
                   at 2^n_f first-level filters (`--n-f`, default 3 = 8 filters, the CPU quickstart
                   space; published: n_f=5, 32 filters; rows get `_nf<n>` when n_f != 3), with their
                   published learning rate or, with `--genome-lr`, the given one (`_lr<lr>` rows);
- `nas_knee`, `nas_small`  with `--run-dir`: the knee of a search run's Pareto front
                   (front.json) and the smallest front member whose validation Dice is within
                   `--dice-tol` (1 point) of the front's best.

Each network is trained with its own learning rate: the genome's for EMONAS/NAS networks,
`--peer-lr` (default 1e-3, a common AdamW rate; not tuned) for the MONAI peers. Test metrics (Dice, HD95 mm per class) are computed on the preprocessed test
volumes in the plan's grid (`target_spacing`), by sliding-window inference exactly like the
Trainer's validation; inference ms/volume is that sliding-window pass on this machine.

    python scripts/bench_peers.py --dataset mni152 --data-root /tmp/bench/mni152 \
        --spacing 4 4 4 --patch 32 32 32 --epochs 8 --iters 12 --out benchmarks/results/peers_mni152_cpu.json
    python scripts/bench_peers.py --dataset hippocampus --data-root ../shared/data/Task04_Hippocampus \
        --cases 60 --epochs 8 --iters 12 --out benchmarks/results/peers_hippocampus_cpu.json
    python scripts/bench_peers.py --tiny --out /tmp/peers_tiny.json     # CI smoke (synthetic phantoms)
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import json
import platform
import sys
import time
from pathlib import Path


import numpy as np
import torch

from medseg_nas.config import DataConfig, TrainConfig
from medseg_nas.results import TrialStatus
from medseg_nas.space import PUBLISHED_GENOMES, Genome
from medseg_nas.train import Trainer


@dataclasses.dataclass(frozen=True)
class PeerSpec:
    """A hand-designed network for `Trainer(network_fn=...)`: name, learning rate, downsamplings."""

    name: str
    lr: float
    n_c: int = 4

    def key(self) -> str:
        return self.name


# -- networks -------------------------------------------------------------------------------------


def monai_unet(in_ch: int, n_cls: int, strides) -> torch.nn.Module:
    from monai.networks.nets import UNet

    return UNet(3, in_ch, n_cls, channels=(16, 32, 64, 128, 256), strides=tuple(tuple(s) for s in strides[:4]),
                num_res_units=2, norm=("instance", {"affine": True}))


def dynunet_plan(spacing, strides) -> dict:
    """nnU-Net 3d_fullres-style kernels/strides/filters for the plan's spacing and strides."""
    sp = [float(s) for s in spacing]
    kernels, all_strides = [], [(1, 1, 1)] + [tuple(s) for s in strides]
    for st in all_strides:
        finest = min(sp)
        kernels.append(tuple(3 if s <= 2 * finest else 1 for s in sp))
        sp = [s * k for s, k in zip(sp, st)]
    # drop trailing levels that do not downsample at all (nnU-Net stops pooling there)
    while len(all_strides) > 2 and all_strides[-1] == (1, 1, 1):
        all_strides.pop()
        kernels.pop()
    filters = [min(32 * 2**i, 320) for i in range(len(all_strides))]
    return {"kernel_size": kernels, "strides": all_strides, "upsample_kernel_size": all_strides[1:], "filters": filters}


def monai_dynunet(in_ch: int, n_cls: int, p: dict) -> torch.nn.Module:
    from monai.networks.nets import DynUNet

    return DynUNet(3, in_ch, n_cls, kernel_size=p["kernel_size"], strides=p["strides"],
                   upsample_kernel_size=p["upsample_kernel_size"], filters=p["filters"],
                   norm_name=("instance", {"affine": True}), act_name=("leakyrelu", {"negative_slope": 0.01}),
                   deep_supervision=False, res_block=False)


def nas_picks(run_dir: Path, tol: float) -> dict[str, tuple[Genome, dict]]:
    """Knee point and the smallest front member within `tol` of the best validation Dice."""
    doc = json.loads((run_dir / "front.json").read_text())
    front = [e for e in doc["front"] if e.get("val_dice") is not None]
    if not front:
        raise SystemExit(f"{run_dir}/front.json has no front members with a validation Dice")
    out = {}
    knee = next((e for e in front if e["id"] == doc.get("knee")), None)
    if knee is not None:
        out["nas_knee"] = knee
    best = max(e["val_dice"] for e in front)
    ok = [e for e in front if e["val_dice"] >= best - tol]
    out["nas_small"] = min(ok, key=lambda e: (e["n_params"] or 0, -e["val_dice"]))
    info = {}
    for k, e in out.items():
        g = e["genome"]
        g = Genome.from_json(g) if isinstance(g, str) else Genome.from_dict(g)
        info[k] = (g, {"trial_id": e["id"], "search_val_dice": e["val_dice"], "f1": e["f1"], "f2": e["f2"],
                       "search_n_params": e["n_params"], "genome": g.to_dict(), "describe": g.describe()})
    return info


# -- data -----------------------------------------------------------------------------------------


def build_data(args):
    from medseg_nas import data as mdata

    root = Path(args.data_root)
    datalist = mdata.load_datalist(root)
    if args.cases and args.cases < len(datalist):
        rng = np.random.default_rng(args.split_seed)
        idx = sorted(rng.choice(len(datalist), size=args.cases, replace=False).tolist())
        datalist = [datalist[i] for i in idx]
    dcfg = DataConfig(root=str(root), val_fraction=args.val_fraction, test_fraction=args.test_fraction,
                      split_seed=args.split_seed, target_spacing=args.spacing, patch_size=args.patch,
                      augment=args.augment)
    t0 = time.perf_counter()
    data = mdata.load_data(root, dcfg, datalist=datalist)
    split, plan, bundle = data.split, data.plan, data.bundle
    info = {"root": str(root), "n_cases": len(datalist), "n_train": len(split.train), "n_val": len(split.val),
            "n_test": len(split.test), "test_ids": list(split.test), "patch_size": list(plan.patch_size),
            "target_spacing": list(plan.target_spacing), "network_plan": plan.network_plan.to_dict(),
            "labels": {str(k): v for k, v in plan.labels.items()}, "augment": args.augment,
            "cache_build_s": round(time.perf_counter() - t0, 2)}
    return plan, bundle, info


# -- evaluation -----------------------------------------------------------------------------------


def evaluate_test(trainer: Trainer, spec, state_dict, plan, bundle) -> dict:
    from medseg_nas.metrics import case_metrics
    from medseg_nas.sliding_window import sliding_window

    net = trainer.build(spec)
    net.load_state_dict(state_dict)
    net.eval()
    fg = [k for k in sorted(plan.labels) if k != 0]
    per_class = {plan.labels[k]: {"dice": [], "hd95": []} for k in fg}
    ms = []
    cases: dict[str, dict[str, float]] = {}  # per-case Dice, for paired comparisons
    with torch.inference_mode():
        for i in range(len(bundle.test)):
            item = bundle.test[i]
            image = item["image"]
            label = np.asarray(torch.as_tensor(item["label"]).reshape(item["label"].shape[-3:]).cpu()).astype(np.int16)
            t0 = time.perf_counter()
            logits = sliding_window(net, image, plan.patch_size, int(trainer.cfg.sw_batch_size),
                                    float(trainer.cfg.sw_overlap), trainer.device)
            pred = logits.argmax(0).cpu().numpy().astype(np.int16)
            ms.append(1000 * (time.perf_counter() - t0))
            m = case_metrics(pred, label, plan.target_spacing, fg)
            for k in fg:
                per_class[plan.labels[k]]["dice"].append(m[k]["dice"])
                per_class[plan.labels[k]]["hd95"].append(m[k]["hd95"])
            case = {plan.labels[k]: round(float(m[k]["dice"]), 4) for k in fg}
            cases[str(bundle.ids["test"][i])] = {**case, "mean": round(float(np.mean(list(case.values()))), 4)}
    out = {name: {"dice": round(float(np.mean(v["dice"])), 4), "dice_std": round(float(np.std(v["dice"])), 4),
                  "hd95_mm": round(float(np.mean(v["hd95"])), 2), "hd95_std": round(float(np.std(v["hd95"])), 2)}
           for name, v in per_class.items()}
    return {"test": out, "test_mean_dice": round(float(np.mean([v["dice"] for v in out.values()])), 4),
            "test_mean_hd95_mm": round(float(np.mean([v["hd95_mm"] for v in out.values()])), 2),
            "infer_ms_per_volume": round(float(np.mean(ms)), 1), "n_test": len(ms), "per_case_dice": cases}


# -- main -----------------------------------------------------------------------------------------


def networks(args, plan, info) -> list[tuple[str, object, object, dict]]:
    """(name, spec for Trainer.fit, network_fn or None, extra info) per network to train."""
    in_ch, n_cls, strides = int(plan.in_channels), int(plan.n_classes), plan.network_plan.strides
    wanted = [w for w in args.nets.split(",") if w] or None
    rows = []
    dyn = dynunet_plan(plan.target_spacing, strides)
    n_dyn = len(dyn["strides"]) - 1
    rows.append(("monai_unet", PeerSpec("monai_unet", args.peer_lr, 4), lambda s: monai_unet(in_ch, n_cls, strides),
                 {"config": "UNet(channels=16-32-64-128-256, strides=plan, num_res_units=2, instance norm)"}))
    rows.append(("monai_dynunet", PeerSpec("monai_dynunet", args.peer_lr, n_dyn), lambda s: monai_dynunet(in_ch, n_cls, dyn),
                 {"config": {k: [list(x) if isinstance(x, tuple) else x for x in v] for k, v in dyn.items()}}))
    for name, g in PUBLISHED_GENOMES.items():
        g = g.with_value("n_f", args.n_f)
        tag = ""
        if args.genome_lr:  # the published lr is tuned for hundreds of epochs; compare at the peers' lr too
            g = g.with_value("lr", args.genome_lr)
            tag = f"_lr{args.genome_lr:g}"
        if args.n_f != 3:
            tag += f"_nf{args.n_f}"
        rows.append((f"emonas_{name}{tag}", g, None, {"genome": g.to_dict(), "describe": g.describe()}))
    if args.run_dir:
        for name, (g, extra) in nas_picks(Path(args.run_dir), args.dice_tol).items():
            rows.append((name, g, None, extra))
    return [r for r in rows if wanted is None or any(fnmatch.fnmatchcase(r[0], w) for w in wanted)]


def tiny_data(dst: Path) -> Path:
    from data_prep import synthetic

    if not (dst / "dataset.json").is_file():
        synthetic.generate(dst, cases=6, seed=0)
    return dst


def fit_and_score(trainer, spec, seed: int, plan, bundle, **budget):
    """One training seed: the TrialResult and its row (budget figures, test metrics when it trained).
    `budget` (epochs, iters_per_epoch, patience) overrides the trainer config's."""
    r = trainer.fit(spec, seed=seed, **budget)
    row = {"seed": seed, "status": r.status, "error": r.error, "n_params": r.n_params,
           "train_s": round(r.seconds, 1), "val_dice": round(r.val_dice, 4), "e_max": r.e_max,
           "step_ms": r.timing.get("step_ms")}
    if r.status == TrialStatus.DONE:
        row.update(evaluate_test(trainer, spec, r.state_dict, plan, bundle))
    return r, row


def seed_means(runs: list[dict]) -> dict:
    """Means over the trained seeds' rows: test Dice, HD95, train seconds, inference ms, per class
    ({} when none trained)."""
    done = [x for x in runs if x["status"] == TrialStatus.DONE]
    if not done:
        return {}
    mean = lambda key, nd: round(float(np.mean([x[key] for x in done])), nd)  # noqa: E731
    return {"test_mean_dice": mean("test_mean_dice", 4), "test_mean_hd95_mm": mean("test_mean_hd95_mm", 2),
            "train_s": mean("train_s", 1), "infer_ms_per_volume": mean("infer_ms_per_volume", 1),
            "test": {c: {m: round(float(np.mean([x["test"][c][m] for x in done])), 4 if m == "dice" else 2)
                         for m in ("dice", "hd95_mm")} for c in done[0]["test"]}}


def add_data_and_budget_args(ap: argparse.ArgumentParser, seeds_default: str) -> None:
    """The data, split and training-budget options every network benchmark shares (bench_cells too)."""
    ap.add_argument("--dataset", default="mni152", help="name used in the output and the table")
    ap.add_argument("--data-root", default="data/mni152_tissue", help="MSD-layout folder (used in place)")
    ap.add_argument("--cases", type=int, default=0, help="random subset of this many cases (0: all)")
    ap.add_argument("--spacing", type=float, nargs=3, default=None, help="target spacing mm (default: planned)")
    ap.add_argument("--patch", type=int, nargs=3, default=None, help="patch size (default: planned)")
    ap.add_argument("--val-fraction", type=float, default=0.2)
    ap.add_argument("--test-fraction", type=float, default=0.2)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--augment", default="light")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--iters", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--seeds", default=seeds_default, help="comma list of training seeds (each network once per seed)")
    ap.add_argument("--n-f", type=int, default=3, help="first-level filters 2^n_f of the published genomes")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_and_budget_args(ap, seeds_default="0")
    ap.add_argument("--genome-lr", type=float, default=0.0,
                    help="train the published genomes at this lr instead of their own (rows get an _lr suffix)")
    ap.add_argument("--peer-lr", type=float, default=1e-3, help="AdamW learning rate of the MONAI peers")
    ap.add_argument("--run-dir", default="", help="search run directory (front.json) for the NAS networks")
    ap.add_argument("--dice-tol", type=float, default=0.01)
    ap.add_argument("--nets", default="", help="comma list of names or globs (emonas_*) restricting the networks")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tiny", action="store_true", help="smoke mode: synthetic phantoms, 1 epoch of 1 step")
    ap.add_argument("--merge", action="store_true",
                    help="add to the results already in --out (same dataset, budget and split required)")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    if args.tiny:
        args.data_root = str(tiny_data(Path(args.out or "/tmp/peers_tiny.json").with_suffix("") / "data"))
        args.dataset, args.epochs, args.iters, args.spacing, args.patch = "synthetic", 1, 1, [4.0, 4.0, 4.0], [16, 16, 16]
        args.test_fraction = args.val_fraction = 0.34
    out_path = Path(args.out or f"benchmarks/results/peers_{args.dataset}_cpu.json")

    plan, bundle, info = build_data(args)
    tcfg = TrainConfig(epochs=args.epochs, iters_per_epoch=args.iters, batch_size=args.batch_size, val_every=1,
                       patience=0, device=args.device)
    nets = networks(args, plan, info)
    seeds = [int(s) for s in args.seeds.split(",")]
    doc = {"benchmark": "bench_peers", "dataset": args.dataset, "device": args.device,
           "threads": torch.get_num_threads(), "torch": torch.__version__, "machine": platform.machine(),
           "processor": platform.processor(), "epochs": args.epochs, "iters_per_epoch": args.iters,
           "batch_size": args.batch_size, "seeds": seeds, "n_f_published": args.n_f, "peer_lr": args.peer_lr,
           "run_dir": args.run_dir or None, "data": info, "argv": sys.argv[1:] if argv is None else list(argv),
           "results": {}}
    if args.merge and out_path.is_file():
        old = json.loads(out_path.read_text())
        same = ("dataset", "epochs", "iters_per_epoch", "batch_size", "seeds")
        if any(old.get(k) != doc[k] for k in same) or old["data"]["test_ids"] != info["test_ids"]:
            raise SystemExit(f"--merge: {out_path} was measured with another dataset, budget or split")
        doc["results"] = old["results"]
        doc["merged_argv"] = old.get("merged_argv", []) + [old.get("argv")]
    print(f"data: {info['n_train']}/{info['n_val']}/{info['n_test']} train/val/test, patch {info['patch_size']}, "
          f"spacing {info['target_spacing']}", flush=True)
    for name, spec, fn, extra in nets:
        runs = []
        for seed in seeds:
            trainer = Trainer(tcfg, bundle, plan, device=args.device, progress=False, network_fn=fn)
            r, row = fit_and_score(trainer, spec, seed, plan, bundle)
            runs.append(row)
            print(f"{name:14s} seed {seed} {r.status:6s} {(r.n_params or 0) / 1e6:7.3f}M  train {r.seconds:7.1f}s  "
                  f"val {r.val_dice:.3f}  test {row.get('test_mean_dice', float('nan')):.3f}  "
                  f"hd95 {row.get('test_mean_hd95_mm', float('nan')):.2f} mm  "
                  f"{row.get('infer_ms_per_volume', float('nan')):.0f} ms/vol {r.error or ''}", flush=True)
        summary = {"n_params": runs[0]["n_params"], "runs": runs, "lr": float(spec.lr), **extra}
        summary.update(seed_means(runs))
        doc["results"][name] = summary
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(doc, indent=2))  # after every network: partial results survive
    ref = doc["results"].get("monai_dynunet", {})
    if ref.get("test_mean_dice") is not None:
        for name, s in doc["results"].items():
            if s.get("test_mean_dice") is not None and s.get("n_params"):
                s["dice_minus_dynunet"] = round(s["test_mean_dice"] - ref["test_mean_dice"], 4)
                s["param_ratio_dynunet"] = round(ref["n_params"] / s["n_params"], 2)
                s["claim_holds"] = bool(s["dice_minus_dynunet"] >= 0 and s["param_ratio_dynunet"] >= 10)
    out_path.write_text(json.dumps(doc, indent=2))
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
