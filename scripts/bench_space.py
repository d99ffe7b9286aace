"""Sizes and speed of decoded EMONAS-Nets vs MONAI's UNet of comparable size (issues 2 and 12).

First prints the published genomes' parameter counts at 32 filters / 7 cells, one input channel,
for both cells (space.cell), beside the published numbers and a hand count of the authors'
Keras graph (EMONAS_REFERENCE.md, "Check"); these are also written to the JSON
("published_params"). The "emonas" count uses the authors' head (one sigmoid channel per
foreground class: prostate 1, hippocampus 2, cardiac 3); our head adds a background channel
(+33 parameters at 32 filters), which the rounding of the published numbers cannot see.

Then trains each published genome (rows `emonas_<name>`: the residual cell; `…_cell-emonas`: the
authors' cell) and MONAI's UNet/DynUNet for a few steps on a fixed 1×1×64×64×32 patch (batch 2)
and writes ms/step, parameters and ms/step per million parameters. Timings on a shared CPU are
noisy: compare rows of the same run, not across runs.

    python scripts/bench_space.py --out benchmarks/results/space_cpu.json [--steps 5] [--device cpu]
    python scripts/bench_space.py --counts-only      # the parameter table only (seconds)
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch
from monai.networks.nets import DynUNet, UNet

from medseg_nas.bench.network_cost import published_params, step_gflop, time_steps
from medseg_nas.space import CELLS, PUBLISHED_GENOMES, build_network


def print_params(rows: dict) -> None:
    print("published genomes, 32 filters, 7 cells, 1 input channel, authors' head (foreground classes):")
    print(f"{'genome':12s} {'classes':>7s} {'published':>10s} {'hand count':>10s} "
          + " ".join(f"{c:>18s}" for c in CELLS))
    for name, r in rows.items():
        cells = " ".join(f"{r[c] / 1e6:8.3f}M ({100 * r[f'{c}_vs_published']:+5.1f}%)" for c in CELLS)
        print(f"{name:12s} {r['classes']:7d} {r['published'] / 1e6:9.2f}M {r['hand_count'] / 1e6:9.2f}M {cells}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/space_cpu.json")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--filters", type=int, default=32, help="first-level filters of the published genomes")
    ap.add_argument("--counts-only", action="store_true", help="print the parameter table and stop (no timing)")
    args = ap.parse_args()
    params = published_params()
    print_params(params)
    if args.counts_only:
        return
    torch.manual_seed(0)
    n_f = {8: 3, 16: 4, 32: 5}[args.filters]
    nets = {f"emonas_{k}": build_network(g.with_value("n_f", n_f), 1, 3) for k, g in PUBLISHED_GENOMES.items()}
    nets.update({f"emonas_{k}_cell-emonas": build_network(g.with_value("n_f", n_f), 1, 3, cell="emonas")
                 for k, g in PUBLISHED_GENOMES.items()})
    # a standard MONAI UNet (4 downsamplings, residual units), widths chosen for ~7.6M parameters
    nets["monai_unet"] = UNet(3, 1, 3, channels=(24, 48, 96, 192, 256), strides=(2, 2, 2, 2), num_res_units=2)
    # nnU-Net's plan for this patch: full-resolution first stage, like EMONAS-Net's level 0
    nets["monai_dynunet"] = DynUNet(
        3, 1, 3, kernel_size=[3] * 5, strides=[1, 2, 2, 2, (2, 2, 1)], upsample_kernel_size=[2, 2, 2, (2, 2, 1)],
        filters=(16, 32, 64, 128, 256), norm_name="instance", res_block=False,
    )
    rows = {}
    for name, net in nets.items():
        params = sum(p.numel() for p in net.parameters())
        gflop = step_gflop(net)
        ms = time_steps(net, args.device, args.steps)
        rows[name] = {
            "params": params,
            "gflop_per_step": round(gflop, 1),
            "ms_per_step": round(ms, 1),
            "ms_per_step_per_Mparam": round(ms / (params / 1e6), 2),
            "ms_per_gflop": round(ms / gflop, 2),
        }
        print(f"{name:22s} {params / 1e6:6.2f}M params {gflop:7.1f} GFLOP {ms:8.1f} ms/step "
              f"{ms / (params / 1e6):7.2f} ms/step/M {ms / gflop:6.2f} ms/GFLOP")
    for ref_name in ("monai_unet", "monai_dynunet"):
        ref = rows[ref_name]
        for row in rows.values():
            row[f"per_Mparam_vs_{ref_name}"] = round(row["ms_per_step_per_Mparam"] / ref["ms_per_step_per_Mparam"], 2)
            row[f"per_gflop_vs_{ref_name}"] = round(row["ms_per_gflop"] / ref["ms_per_gflop"], 2)
    out = {
        "benchmark": "bench_space",
        "patch": [1, 1, 64, 64, 32],
        "batch": 2,
        "steps": args.steps,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "published_params": params,
        "results": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
