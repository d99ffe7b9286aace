"""The hand-designed networks a user would pick instead of a search (MONAI UNet, DynUNet as
nnU-Net plans it) and the search's own picks from a front: the rows every peer benchmark trains."""

from __future__ import annotations

import dataclasses
import fnmatch
import json
from pathlib import Path

import torch

from medseg_nas.space import PUBLISHED_GENOMES, Genome, SearchSpace
from medseg_nas.space.genome import N_C_CHOICES, N_F_CHOICES
from medseg_nas.space.network import NetworkSpec


@dataclasses.dataclass(frozen=True)
class PeerSpec:
    """A hand-designed network for `Trainer(network_fn=...)`: name, learning rate, downsamplings."""

    name: str
    lr: float
    n_c: int = 4

    def key(self) -> str:
        return self.name


def monai_unet(in_ch: int, n_cls: int, strides, base: int = 16) -> torch.nn.Module:
    """MONAI UNet as the tutorials configure it (base 16: 16-32-64-128-256); `base` scales the width."""
    from monai.networks.nets import UNet

    return UNet(3, in_ch, n_cls, channels=tuple(base * 2**i for i in range(5)), strides=tuple(tuple(s) for s in strides[:4]),
                num_res_units=2, norm=("instance", {"affine": True}))


def monai_segresnet(in_ch: int, n_cls: int, init_filters: int) -> torch.nn.Module:
    """MONAI SegResNet (Auto3DSeg's default family) at MONAI's default depth, instance norm as the
    other peers (its default group norm needs widths divisible by 8, too coarse to size it)."""
    from monai.networks.nets import SegResNet

    return SegResNet(3, init_filters, in_ch, n_cls, norm=("instance", {"affine": True}))


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def sized_width(build, target: int, widths=range(2, 65)) -> tuple[int, int]:
    """(width, parameters) of the width whose network is nearest `target` parameters in log ratio:
    a standard network scaled to the search pick's size (issue 27's "standard small network")."""
    import math

    best = None
    for w in widths:
        n = n_params(build(w))
        gap = abs(math.log(n / target))
        if best is None or gap < best[2]:
            best = (w, n, gap)
        if n > 2 * target:  # parameters grow with the width: nothing wider is nearer
            break
    return best[0], best[1]


def dynunet_plan(spacing, strides, base: int = 32) -> dict:
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
    filters = [min(base * 2**i, 10 * base) for i in range(len(all_strides))]  # base 32: nnU-Net's 32..320
    return {"kernel_size": kernels, "strides": all_strides, "upsample_kernel_size": all_strides[1:], "filters": filters}


def _plain(dyn: dict) -> dict:
    """A dynunet_plan as JSON-able lists, for a record's "config"."""
    return {k: [list(x) if isinstance(x, tuple) else x for x in v] for k, v in dyn.items()}


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


def network_specs(cfg, plan, info: dict, peer_lr: float) -> dict[str, tuple[object, object, dict]]:
    """A whole-job run's peers (scripts/whole_job_peers.py), on the run's config and plan:
    name -> (spec for Trainer.fit, network_fn or None, description)."""
    in_ch, n_cls, strides = int(plan.in_channels), int(plan.n_classes), plan.network_plan.strides
    dyn = dynunet_plan(plan.target_spacing, strides)
    chosen = Genome.from_dict(info["genome"])
    small = Genome.smallest(SearchSpace.from_config(cfg.space))
    # the pick's cell one level deeper at half the width (about its parameters), full resolution plain
    light = Genome(chosen.inputs, chosen.ops, min(chosen.n_c + 1, max(N_C_CHOICES)), max(chosen.n_f - 1, min(N_F_CHOICES)), chosen.lr)
    return {
        "nas_pick": (chosen, None, {"genome": chosen.to_dict(), "describe": chosen.describe(),
                                    "trial_id": info["trial_id"]}),
        # the same genome in the authors' cell (EMONASArch.py), trained like the pick's retrained seeds
        "nas_pick_cell_emonas": (chosen, lambda g: NetworkSpec.of(plan, "emonas").build(g),
                                 {"genome": chosen.to_dict(), "describe": chosen.describe(), "cell": "emonas",
                                  "trial_id": info["trial_id"]}),
        "nas_pick_light": (light, lambda g: NetworkSpec.of(plan, "residual_light").build(g),
                           {"genome": light.to_dict(), "describe": light.describe(), "cell": "residual_light",
                            "trial_id": info["trial_id"]}),
        "monai_dynunet": (PeerSpec("monai_dynunet", peer_lr, len(dyn["strides"]) - 1),
                          lambda s: monai_dynunet(in_ch, n_cls, dyn),
                          {"config": _plain(dyn)}),
        "monai_unet": (PeerSpec("monai_unet", peer_lr, 4), lambda s: monai_unet(in_ch, n_cls, strides),
                       {"config": "UNet(channels=16-32-64-128-256, strides=plan, num_res_units=2, instance norm)"}),
        "smallest": (small, None, {"genome": small.to_dict(), "describe": small.describe()}),
        **small_standard_networks(in_ch, n_cls, plan, NetworkSpec.of(plan, cfg.space.cell).n_params(chosen), peer_lr),
    }


def trial_specs(record: dict) -> dict[str, tuple[Genome, None, dict]]:
    """`trial_<id>` per trial genome of a whole-job summary (`trials`), in network_specs' entry
    shape: another genome of the same search retrained beside the pick, e.g. the one a cost cap
    (`retrain.max_macs`) would have picked, without repeating the search."""
    out = {}
    for t in record.get("trials", []):
        g = Genome.from_dict(t["genome"])
        out[f"trial_{t['id']}"] = (g, None, {"genome": g.to_dict(), "describe": g.describe(), "trial_id": t["id"],
                                             "search_f1": t.get("f1"), "search_n_params": t.get("n_params")})
    return out


def small_standard_networks(in_ch: int, n_cls: int, plan, target: int, peer_lr: float) -> dict:
    """MONAI UNet, DynUNet (nnU-Net's plan, fewer filters) and SegResNet, each at the width whose
    parameter count is nearest `target` (the pick's): the controls that could beat a search pick of
    that size (issue 27). Same entry shape as network_specs'."""
    strides = plan.network_plan.strides
    out = {}
    base, n = sized_width(lambda w: monai_unet(in_ch, n_cls, strides, w), target)
    out["small_unet"] = (PeerSpec("small_unet", peer_lr, 4), lambda s, b=base: monai_unet(in_ch, n_cls, strides, b),
                         {"config": f"UNet(channels={base}x(1,2,4,8,16), num_res_units=2, instance norm)",
                          "width": base, "sized_to": target, "n_params": n})
    dyn_of = lambda w: dynunet_plan(plan.target_spacing, strides, w)  # noqa: E731
    base, n = sized_width(lambda w: monai_dynunet(in_ch, n_cls, dyn_of(w)), target)
    dyn = dyn_of(base)
    out["small_dynunet"] = (PeerSpec("small_dynunet", peer_lr, len(dyn["strides"]) - 1),
                            lambda s, d=dyn: monai_dynunet(in_ch, n_cls, d),
                            {"config": _plain(dyn),
                             "width": base, "sized_to": target, "n_params": n})
    base, n = sized_width(lambda w: monai_segresnet(in_ch, n_cls, w), target)
    out["small_segresnet"] = (PeerSpec("small_segresnet", peer_lr, 3), lambda s, b=base: monai_segresnet(in_ch, n_cls, b),
                              {"config": f"SegResNet(init_filters={base}, blocks_down=(1,2,2,4), instance norm)",
                               "width": base, "sized_to": target, "n_params": n})
    return out


def networks(args, plan) -> list[tuple[str, object, object, dict]]:
    """bench_peers' rows (scripts/bench_peers.py's options): (name, spec for Trainer.fit, network_fn
    or None, extra info) per network to train."""
    in_ch, n_cls, strides = int(plan.in_channels), int(plan.n_classes), plan.network_plan.strides
    wanted = [w for w in args.nets.split(",") if w] or None
    rows = []
    dyn = dynunet_plan(plan.target_spacing, strides)
    n_dyn = len(dyn["strides"]) - 1
    rows.append(("monai_unet", PeerSpec("monai_unet", args.peer_lr, 4), lambda s: monai_unet(in_ch, n_cls, strides),
                 {"config": "UNet(channels=16-32-64-128-256, strides=plan, num_res_units=2, instance norm)"}))
    rows.append(("monai_dynunet", PeerSpec("monai_dynunet", args.peer_lr, n_dyn), lambda s: monai_dynunet(in_ch, n_cls, dyn),
                 {"config": _plain(dyn)}))
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


def add_dynunet_claims(results: dict) -> None:
    """Each row against DynUNet (the issue's claim: its Dice with >= 10x fewer parameters), in place."""
    ref = results.get("monai_dynunet", {})
    if ref.get("test_mean_dice") is not None:
        for name, s in results.items():
            if s.get("test_mean_dice") is not None and s.get("n_params"):
                s["dice_minus_dynunet"] = round(s["test_mean_dice"] - ref["test_mean_dice"], 4)
                s["param_ratio_dynunet"] = round(ref["n_params"] / s["n_params"], 2)
                s["claim_holds"] = bool(s["dice_minus_dynunet"] >= 0 and s["param_ratio_dynunet"] >= 10)
