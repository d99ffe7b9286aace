"""The hand-designed networks a user would pick instead of a search (MONAI UNet, DynUNet as
nnU-Net plans it) and the search's own picks from a front: the rows every peer benchmark trains."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from medseg_nas.space import Genome


@dataclasses.dataclass(frozen=True)
class PeerSpec:
    """A hand-designed network for `Trainer(network_fn=...)`: name, learning rate, downsamplings."""

    name: str
    lr: float
    n_c: int = 4

    def key(self) -> str:
        return self.name


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
