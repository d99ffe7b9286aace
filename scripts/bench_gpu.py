"""Search trials on a GPU: seconds per trial, peak memory and validation Dice with mixed precision
and in fp32, on one fixed genome list (BENCHMARKS "GPU numbers").

The same `distinct_genomes` list as scripts/bench_throughput.py is trained by the real search loop
(`timed_search`: run_search with the default trial) once per precision, after an untimed warm-up
trial (CUDA context, cuDNN's first plans), so both precisions train exactly the same networks
from the same seeds. Per trial it reads back what the runner stored (seconds, val Dice, peak GPU
memory), so AMP's effect on the proxy objective is measured beside its speed.

    python scripts/bench_gpu.py --config configs/hippocampus_cpu.yaml --trials 4 --out /tmp/gpu_trials.json
    python scripts/bench_gpu.py --device cpu --tiny --out /tmp/gpu_tiny.json   # smoke of the code path, no GPU
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

from medseg_nas.bench.throughput import WHOLE_TRIALS, distinct_genomes, timed_search
from medseg_nas.jsonio import atomic_write
from medseg_nas.space import SearchSpace
from medseg_nas.trial_store import TrialStore


def device_facts(device: str) -> dict:
    """What the record needs to be read on another machine: GPU, driver-side versions, precision used."""
    import torch

    from medseg_nas.train.precision import precision_for

    dev = torch.device(device)
    facts = {"device": device, "torch": torch.__version__, "cpu_count": os.cpu_count(), "machine": platform.machine(),
             "amp_policy": repr(precision_for(dev, True))}
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        facts.update(gpu=p.name, gpu_mem_gib=round(p.total_memory / 2**30, 1), capability=f"{p.major}.{p.minor}",
                     cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                     bf16=torch.cuda.is_bf16_supported())
    return facts


def per_trial(run_dir: Path) -> list[dict]:
    """The runner's own record of each trial: seconds, validation Dice, peak memory, parameters."""
    with TrialStore(run_dir / "trials.sqlite") as store:
        rows = store.rows()
    out = []
    for r in rows:
        res = r.result or {}
        out.append({"genome": r.key, "status": r.status, "seconds": r.seconds, "f1": r.f1, "n_params": r.n_params,
                     "val_dice": res.get("val_dice"), "peak_mem_mb": res.get("peak_mem_mb"), "error": r.error})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/hippocampus_cpu.yaml")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0, help="seed of the genome list")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--work-dir", default="runs/bench_gpu")
    ap.add_argument("--modes", default="amp,fp32", help="precisions to time, in order (amp, fp32)")
    ap.add_argument("--tiny", action="store_true", help="smoke: synthetic phantoms, 1 epoch of 2 steps, 2 trials")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - {"amp", "fp32"}:
        raise SystemExit(f"bench_gpu: --modes takes amp and/or fp32, got {args.modes!r}")

    import torch

    from medseg_nas.config import load_config
    from medseg_nas.data import ensure_dataset

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("bench_gpu: --device cuda but torch sees no GPU (use --device cpu for a smoke run)")
    overrides = [*WHOLE_TRIALS, *args.set, f"train.device={args.device}"]
    work = Path(args.work_dir)
    if args.tiny:
        data = work / "tiny_data"
        if not (data / "dataset.json").is_file():
            from data_prep import synthetic

            synthetic.generate(data, cases=6, seed=0)
        overrides += [f"data.root={data}", "data.target_spacing=[4,4,4]", "data.patch_size=[16,16,16]",
                      "train.epochs=1", "train.iters_per_epoch=2", "data.val_fraction=0.34", "data.test_fraction=0.17"]
        args.trials = min(args.trials, 2)
    cfg = load_config(args.config, overrides)
    ensure_dataset(cfg.data, verify_stamp=False)
    genomes = distinct_genomes(SearchSpace.from_config(cfg.space), args.trials, args.seed)
    doc = {"benchmark": "bench_gpu", "config": args.config, "overrides": overrides, "trials": args.trials,
           "budget": {"epochs": cfg.train.epochs, "iters_per_epoch": cfg.train.iters_per_epoch,
                      "batch_size": cfg.train.batch_size, "patch_size": cfg.data.patch_size},
           "genomes": [g.describe() for g in genomes], "facts": device_facts(args.device), "results": {}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    warm = load_config(args.config, overrides + ["train.epochs=1", "train.iters_per_epoch=2"])
    doc["warmup"] = timed_search(warm, genomes[:1], work / "warmup")
    for name in modes:
        amp = name == "amp"
        mcfg = load_config(args.config, overrides + [f"train.amp={str(amp).lower()}"])
        res = timed_search(mcfg, genomes, work / name)
        res["per_trial"] = per_trial(work / name)
        doc["results"][name] = res
        print(f"{name}: {res['seconds']} s, {res['trials_per_hour']} trials/h", flush=True)
        atomic_write(out, json.dumps(doc, indent=2, default=str))
    if len(modes) < 2:
        print(f"wrote {out}")
        return 0
    a, f = doc["results"]["amp"], doc["results"]["fp32"]
    doc["speedup_amp_vs_fp32"] = round(f["seconds"] / a["seconds"], 2) if a["seconds"] else None
    pairs = [(x["val_dice"], y["val_dice"]) for x, y in zip(a["per_trial"], f["per_trial"])
             if x["val_dice"] is not None and y["val_dice"] is not None]
    doc["val_dice_amp_minus_fp32"] = [round(x - y, 4) for x, y in pairs]
    atomic_write(out, json.dumps(doc, indent=2, default=str))
    print(f"wrote {out}: AMP {doc['speedup_amp_vs_fp32']}x fp32; val Dice AMP - fp32 {doc['val_dice_amp_minus_fp32']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
