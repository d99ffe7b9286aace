"""Search throughput: trials/hour for the quickstart budget, local executor vs Ray (issue 7, part 3).

Runs the real search loop (`medseg_nas.nas.runner.run_search` with the default trial: DataBundle +
Trainer) twice on the same fixed list of genomes drawn from the config's space (seeded), so both
executors train exactly the same networks:

- `local`: the in-process executor, one trial at a time using every torch thread;
- `ray`:   a local Ray instance started here with `--ray-cpus` CPUs, `executor.kind=ray`,
           `--ray-workers` trials in flight, `cpus_per_trial=1` (Ray then sets OMP_NUM_THREADS=1
           in each worker, so each trial trains on one thread).

Reported: seconds, trials/hour and the speed-up of Ray over local (ideal = number of workers
when each trial scales perfectly to one core; on 2 cores a single trial already uses both cores
for its convolutions, so the gain can only come from the parts that do not: data, validation,
Python). Ray start-up is timed separately and not counted in the search seconds.

    python scripts/bench_throughput.py --config configs/quickstart.yaml --trials 4 \
        --set data.root=/tmp/bench/mni152 --out benchmarks/results/throughput_cpu.json
    python scripts/bench_throughput.py --tiny --out /tmp/throughput_tiny.json   # CI smoke
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from medseg_nas.bench.throughput import WHOLE_TRIALS, distinct_genomes, timed_search
from medseg_nas.space import SearchSpace


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/quickstart.yaml")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0, help="seed of the genome list")
    ap.add_argument("--ray-workers", type=int, default=2)
    ap.add_argument("--ray-cpus", type=int, default=2)
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--work-dir", default="runs/bench_throughput")
    ap.add_argument("--tiny", action="store_true", help="smoke: synthetic phantoms, 1 epoch of 1 step, 2 trials")
    ap.add_argument("--out", default="benchmarks/results/throughput_cpu.json")
    args = ap.parse_args(argv)

    import torch

    from medseg_nas.config import load_config

    overrides = [*WHOLE_TRIALS, *args.set, "train.device=cpu"]
    if args.tiny:
        data = Path(args.work_dir) / "tiny_data"
        if not (data / "dataset.json").is_file():
            from data_prep import synthetic

            synthetic.generate(data, cases=6, seed=0)
        overrides += [f"data.root={data}", "data.target_spacing=[4,4,4]", "data.patch_size=[16,16,16]",
                      "train.epochs=1", "train.iters_per_epoch=1", "data.val_fraction=0.34", "data.test_fraction=0.17"]
        args.trials = min(args.trials, 2)
    cfg = load_config(args.config, overrides)
    from medseg_nas.data import ensure_dataset

    ensure_dataset(cfg.data, verify_stamp=False)  # --tiny points data.root at its own dataset
    genomes = distinct_genomes(SearchSpace.from_config(cfg.space), args.trials, args.seed)
    work = Path(args.work_dir)
    doc = {"benchmark": "bench_throughput", "config": args.config, "overrides": overrides, "trials": args.trials,
           "budget": {"epochs": cfg.train.epochs, "iters_per_epoch": cfg.train.iters_per_epoch,
                      "batch_size": cfg.train.batch_size, "patience": cfg.train.patience,
                      "patch_size": cfg.data.patch_size, "target_spacing": cfg.data.target_spacing},
           "genomes": [g.describe() for g in genomes], "cpu_count": os.cpu_count(),
           "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "machine": platform.machine(),
           "load_avg_start": list(os.getloadavg()), "results": {}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    local = timed_search(cfg, genomes, work / "local")
    doc["results"]["local"] = local
    print(f"local: {local}", flush=True)
    out.write_text(json.dumps(doc, indent=2))

    if not args.skip_ray:
        import ray

        from medseg_nas.nas.executors import RayExecutor
        from medseg_nas.nas.trial import train_trial

        t0 = time.perf_counter()
        env = {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
        ex = RayExecutor(train_trial, workers=args.ray_workers, cpus_per_trial=1)
        startup = time.perf_counter() - t0
        try:
            rcfg = load_config(args.config, overrides + ["executor.kind=ray", f"executor.workers={args.ray_workers}"])
            res = timed_search(rcfg, genomes, work / "ray", executor=ex)
        finally:
            ex.shutdown()
            ray.shutdown()
        res.update(ray_startup_s=round(startup, 1), workers=args.ray_workers, ray_cpus=args.ray_cpus, cpus_per_trial=1)
        doc["results"]["ray"] = res
        doc["speedup_ray_vs_local"] = round(local["seconds"] / res["seconds"], 2) if res["seconds"] else None
        print(f"ray: {res}  speed-up {doc['speedup_ray_vs_local']}x (ideal {args.ray_workers}x)", flush=True)
    doc["load_avg_end"] = list(os.getloadavg())
    out.write_text(json.dumps(doc, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
