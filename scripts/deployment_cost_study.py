"""Issue 29's study: what the found networks and their peers cost to deploy on this CPU.

    python scripts/deployment_cost_study.py --cost-run runs/hippocampus_cpu_macs \
        --params-record benchmarks/results/hippocampus_whole_job_aug.json \
        --peers benchmarks/results/hippocampus_whole_job_peers.json \
        --out benchmarks/results/hippocampus_deployment_cost.json

Networks: the pick of the cost search (`--cost-run`, a finished `medseg-nas run` with
objectives.cost macs or latency), the pick of the default (parameter) search (`--params-record`,
a scripts/whole_job_summary.py record), MONAI DynUNet (nnU-Net's plan) and MONAI UNet as
scripts/whole_job_peers.py builds them for the run's plan. Each one's test Dice / HD95 is read
from its record (the peers': means over their seeds at equal wall-clock), never re-measured here.

Measured here, alone (run nothing else beside it): parameters, MACs of one patch, and the median
ms per median-shaped volume over `--runs` timed runs after one warm-up, through the predictor's
sliding window, for PyTorch (the predictor's CPU layout), TorchScript (traced) and onnxruntime,
at each of `--threads`. Latency does not depend on the weights, so the networks are built at
seed 0 rather than loaded. Both searches' fronts are recomputed in both costs (parameters and
MACs, exact, from the genomes). The target (issue 29): a network at or above DynUNet's test Dice
at <= 1/10 of DynUNet's PyTorch ms/volume at the largest thread count.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import warnings
from pathlib import Path

import torch

from medseg_nas.data import DataPlan
from medseg_nas.deployment_cost import count_macs, measure_latency
from medseg_nas.jsonio import atomic_write
from medseg_nas.trial_store import TrialStore
from medseg_nas.rundir import RunDir
from medseg_nas.search.archive import pareto_front
from medseg_nas.space import Genome, build_network
from medseg_nas.stages.export import OnnxNetwork
from medseg_nas.bench.peers import dynunet_plan, monai_dynunet, monai_unet


def latencies(build, plan: DataPlan, threads: list[int], runs: int) -> dict:
    """{backend: {threads: median ms per volume}} for PyTorch, TorchScript and onnxruntime."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = build().eval()
    x = torch.randn(1, int(plan.in_channels), *plan.patch_size)
    warnings.simplefilter("ignore")  # tracer and exporter notes about InstanceNorm: constant here
    with torch.no_grad():
        ts = torch.jit.trace(net, x, check_trace=False)
    out: dict = {"pytorch": {}, "torchscript": {}, "onnx": {}}
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "net.onnx"
        axes = {0: "batch", 2: "x", 3: "y", 4: "z"}
        torch.onnx.export(net, (x,), str(onnx_path), input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": axes, "logits": axes}, opset_version=17, dynamo=False)
        before = torch.get_num_threads()
        try:
            for t in threads:
                torch.set_num_threads(t)
                args = (int(plan.in_channels), plan.median_shape, plan.patch_size, runs)
                out["pytorch"][t] = round(measure_latency(net, *args)[0], 1)
                out["torchscript"][t] = round(measure_latency(ts, *args)[0], 1)
                out["onnx"][t] = round(measure_latency(OnnxNetwork(onnx_path), *args, predictor_layout=False)[0], 1)
        finally:
            torch.set_num_threads(before)
    return out


def fronts(points: list[dict]) -> dict:
    """Pareto fronts of (f1, log cost) for cost in params and MACs: the member ids."""
    done = [p for p in points if p["f1"] is not None]
    return {c: sorted(done[i]["id"] for i in pareto_front([(p["f1"], math.log(p[c])) for p in done]))
            for c in ("n_params", "macs")}


def search_points(trials: list[dict], plan: DataPlan, cell: str) -> list[dict]:
    pts = []
    for t in trials:
        g = Genome.from_dict(t["genome"])
        with torch.device("meta"):
            net = build_network(g, int(plan.in_channels), int(plan.n_classes), plan.network_plan, cell)
        pts.append({"id": t["id"], "f1": t["f1"], "n_params": t["n_params"] or sum(p.numel() for p in net.parameters()),
                    "macs": t.get("macs") or count_macs(net, (1, int(plan.in_channels), *plan.patch_size))})
    return pts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cost-run", required=True)
    ap.add_argument("--params-record", required=True)
    ap.add_argument("--peers", required=True)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    run = RunDir(args.cost_run)
    cfg, plan = run.config(), DataPlan.from_dict(json.loads(run.plan_json.read_text()))
    threads = [int(t) for t in args.threads.split(",")]
    in_ch, n_cls = int(plan.in_channels), int(plan.n_classes)
    record, peers = json.loads(Path(args.params_record).read_text()), json.loads(Path(args.peers).read_text())["results"]
    summary = json.loads((run.path / "best" / "summary.json").read_text())
    retrain = json.loads(run.retrain_json.read_text())
    with TrialStore(run.trials_db) as st:
        cost_trials = [{"id": r.id, "f1": r.f1, "n_params": r.n_params, "macs": r.macs, "genome": r.genome}
                       for r in st.rows("done")]
    dyn = dynunet_plan(plan.target_spacing, plan.network_plan.strides)
    genome = lambda d: (lambda: build_network(Genome.from_dict(d), in_ch, n_cls, plan.network_plan, cfg.space.cell))  # noqa: E731
    nets = {
        "cost_pick": (genome(retrain["genome"]), {"dice": summary["mean_dice"], "hd95_mm": summary.get("mean_hd95_mm"),
                                        "trial_id": retrain.get("trial_id"), "genome": retrain["genome"], "n_seeds": 1}),
        "params_pick": (genome(record["chosen"]["genome"]), {"dice": record["test"]["mean_dice"], "hd95_mm": record["test"]["mean_hd95_mm"],
                         "trial_id": record["chosen"]["trial_id"], "genome": record["chosen"]["genome"], "n_seeds": 1}),
        "monai_dynunet": (lambda: monai_dynunet(in_ch, n_cls, dyn), {}),
        "monai_unet": (lambda: monai_unet(in_ch, n_cls, plan.network_plan.strides), {}),
    }
    rows = {}
    for name, (build, info) in nets.items():
        peer = peers.get(name, {})
        info = info or {"dice": peer.get("test_mean_dice"), "hd95_mm": peer.get("test_mean_hd95_mm"), "n_seeds": peer.get("n_seeds")}
        with torch.device("meta"):
            meta = build()
        row = {**info, "n_params": sum(p.numel() for p in meta.parameters()),
               "macs": count_macs(meta, (1, in_ch, *plan.patch_size)), "ms_per_volume": latencies(build, plan, threads, args.runs)}
        rows[name] = row
        print(name, json.dumps(row), flush=True)
    top = max(threads)
    dyn_row = rows["monai_dynunet"]
    target = {"rule": f"test Dice >= DynUNet's and PyTorch ms/volume at {top} threads <= DynUNet's / 10",
              "dynunet_dice": dyn_row["dice"], "max_ms": round(dyn_row["ms_per_volume"]["pytorch"][top] / 10, 1),
              "met_by": [n for n, r in rows.items() if n != "monai_dynunet" and r["dice"] is not None
                         and dyn_row["dice"] is not None and r["dice"] >= dyn_row["dice"] and r["ms_per_volume"]["pytorch"][top] <= dyn_row["ms_per_volume"]["pytorch"][top] / 10]}
    doc = {"benchmark": "deployment_cost", "cost_run": str(run.path), "cost": cfg.objectives.cost,
           "params_record": args.params_record, "peers_record": args.peers, "median_shape": list(plan.median_shape),
           "patch": list(plan.patch_size), "threads": threads, "runs": args.runs, "networks": rows, "target": target,
           "fronts": {"cost_search": fronts(search_points(cost_trials, plan, cfg.space.cell)),
                      "params_search": fronts(search_points(record["trials"], plan, cfg.space.cell))}}
    atomic_write(Path(args.out), json.dumps(doc, indent=2))
    print(json.dumps(target, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
