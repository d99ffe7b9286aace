"""Does the 2D / pseudo-3D mix matter? The whole job with the space restricted (issue 26).

    python scripts/space_ablation.py configs/acdc_cpu.yaml --spaces full,3d,2d --seeds 0,1 \
        --work runs/space_ablation --out benchmarks/results/acdc_space_ablation.json

Each (space, seed) is one `medseg-nas run` of the config (search, retrain of its pick, evaluate on
the run's test split) into `--work/<space>_s<seed>`, with `space.ops` restricted and
`search.seed` set; everything else — data, split (the config's split_seed), trial budget, retrain
budget and training seed — is the config's, so the spaces differ only in the operations the
search may use. Spaces (identity is in all; conv3d_1 is pointwise, so it is in both restricted
spaces: it mixes channels, never neighbouring voxels):
    full  every op of the config          3d  conv3d_1/3/5          2d  conv3d_1, conv2d_3/5/7

The answer is stated before the runs: the 2D / pseudo-3D operations earn their place on this data
if the 3D-only space's mean foreground test Dice is below the full space's with the 95 %
percentile-bootstrap interval (10,000 resamples) of the paired per-case difference (3d - full;
each case's Dice averaged over seeds first) entirely below 0; an interval containing 0 is "no
difference shown at this budget", whichever way the means point. The bootstrap resamples whole
test patients where the datalist groups cases (ACDC: a patient's ED and ES frames are drawn
together, since they are not independent), else cases. The same interval is given per class and
for 2d - full.

Resumable: a (space, seed) whose run directory already has best/summary.json is read, not rerun,
and so is one already in the `--out` record made from the same config (its per-case scores are all
the comparison needs, so a record outlives its run directories); the record is rewritten after
every run. `comparisons_by_seed` repeats the comparison within each seed, for the spaces that
finished it, so a partial record is not read as if its spaces had equal seeds. `--reuse full:0=runs/acdc_cpu` adopts a finished whole job
as an arm (the config's own `medseg-nas run` is the full space at the config's search seed), but
only if its saved config.yaml equals the arm's in every key but the run's name and root: a run
made with another budget or space is refused, naming the keys that differ.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path


from medseg_nas.bench.data import groups_of
from medseg_nas.bench.stats import compare
from medseg_nas.config import config_to_dict, load_config
from medseg_nas.jsonio import atomic_write
from medseg_nas.yaml_io import flatten_keys

SPACES = {
    "full": None,  # the config's own ops
    "3d": ["conv3d_1", "conv3d_3", "conv3d_5", "identity"],
    "2d": ["conv3d_1", "conv2d_3", "conv2d_5", "conv2d_7", "identity"],
}
def per_case_dice(summary: dict, raw: bool = False) -> dict[str, dict[str, float]]:
    """{case id: {class name: Dice, ..., "mean": mean foreground Dice}} from best/summary.json:
    the product's output (post-processed as the run decided), or with `raw` the network's output
    (the same figures when the run reduced no class)."""
    out = {}
    for case in summary["cases"]:
        scores = case.get("raw", case) if raw else case
        d = {name: float(v["dice"]) for name, v in scores["classes"].items()}
        d["mean"] = float(scores["mean_dice"])
        out[str(case["id"])] = d
    return out


def arm_sets(space: str, seed: int) -> list[str]:
    """The `--set` overrides that make the config one arm: the search seed and the restricted ops."""
    sets = [f"search.seed={seed}"]
    if SPACES[space] is not None:
        sets.append("space.ops=[" + ",".join(SPACES[space]) + "]")
    return sets


def adopt(config: str, space: str, seed: int, run_dir: Path) -> Path:
    """A finished run stands in for an arm only if it ran exactly the arm's config."""
    where = f"--reuse {space}:{seed}={run_dir}"
    if not (run_dir / "best" / "summary.json").is_file():
        raise SystemExit(f"{where}: no best/summary.json (the run has not finished its evaluate stage)")
    saved = flatten_keys(config_to_dict(load_config(run_dir / "config.yaml")))
    want = flatten_keys(config_to_dict(load_config(config, arm_sets(space, seed))))
    differ = sorted(k for k in set(saved) | set(want)
                    if k not in ("name", "run_root") and saved.get(k) != want.get(k))
    if differ:
        raise SystemExit(f"{where}: its config.yaml differs from the arm's in "
                         + ", ".join(f"{k} ({saved.get(k)!r} vs {want.get(k)!r})" for k in differ))
    return run_dir


def run_one(config: str, space: str, seed: int, work: Path, reuse: dict | None = None) -> Path:
    if reuse and (space, seed) in reuse:
        return adopt(config, space, seed, reuse[(space, seed)])
    run_dir = work / f"{space}_s{seed}"
    if (run_dir / "best" / "summary.json").is_file():
        return run_dir
    sets = arm_sets(space, seed)
    cmd = [sys.executable, "-m", "medseg_nas", "run", config, "--run-dir", str(run_dir)]
    for s in sets:
        cmd += ["--set", s]
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return run_dir


def recorded_arms(out: Path, config: str) -> dict:
    """{space: {seed: arm}} already in the record at `out`, if it was made from `config`."""
    if not out.is_file():
        return {}
    old = json.loads(out.read_text())
    if old.get("benchmark") != "space_ablation" or old.get("config") != config:
        raise SystemExit(f"{out}: a record of another benchmark or config ({old.get('config')!r}); "
                         "choose another --out")
    return old.get("runs", {})


def comparisons(doc: dict, groups: dict | None) -> None:
    """The seed-averaged comparisons, and the same within each seed the full space and another finished."""
    for key, field in (("comparisons", "per_case"), ("comparisons_raw", "per_case_raw")):
        runs = {s: {int(k): v[field] for k, v in by_seed.items()} for s, by_seed in doc["runs"].items()}
        doc[key] = compare(runs, groups=groups)
    doc["comparisons_by_seed"] = {}
    for seed in sorted(doc["runs"].get("full", {}), key=int):
        at_seed = {s: {int(seed): by_seed[seed]["per_case"]} for s, by_seed in doc["runs"].items() if seed in by_seed}
        if len(at_seed) > 1:
            doc["comparisons_by_seed"][seed] = compare(at_seed, groups=groups)


def record_of(run_dir: Path) -> dict:
    summary = json.loads((run_dir / "best" / "summary.json").read_text())
    info = json.loads((run_dir / "best" / "retrain.json").read_text())
    times = json.loads((run_dir / "stage_times.json").read_text())["runs"] if (run_dir / "stage_times.json").is_file() else []
    return {"run_dir": str(run_dir), "genome": info["genome"], "n_params": info.get("n_params"),
            "test_mean_dice": round(summary["mean_dice"], 4),
            "test_classes": {n: {"dice": round(c["dice"]["mean"], 4), "hd95_mm": round(c["hd95"]["mean"], 2)}
                             for n, c in summary["classes"].items()},
            "total_s": round(sum(t["total_s"] for t in times), 1) if times else None,
            "postprocess_applied": (summary.get("postprocess") or {}).get("largest_component", []),
            "per_case": per_case_dice(summary), "per_case_raw": per_case_dice(summary, raw=True)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--spaces", default="full,3d,2d")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--work", default="runs/space_ablation")
    ap.add_argument("--out", required=True)
    ap.add_argument("--reuse", action="append", default=[], metavar="SPACE:SEED=RUN_DIR",
                    help="a finished run that is this arm (its config.yaml must be the arm's)")
    args = ap.parse_args(argv)
    spaces = [s for s in args.spaces.split(",") if s]
    unknown = [s for s in spaces if s not in SPACES]
    if unknown:
        raise SystemExit(f"--spaces: unknown {unknown} (known: {', '.join(SPACES)})")
    seeds = [int(s) for s in args.seeds.split(",") if s]
    reuse = {}
    for item in args.reuse:
        arm, _, run = item.partition("=")
        space, _, seed = arm.partition(":")
        if space not in SPACES or not seed.isdigit() or not run:
            raise SystemExit(f"--reuse {item!r}: expected SPACE:SEED=RUN_DIR with SPACE in {', '.join(SPACES)}")
        reuse[(space, int(seed))] = Path(run)
    out, work = Path(args.out), Path(args.work)
    groups = groups_of(load_config(args.config).data.root)
    doc = {"benchmark": "space_ablation", "config": args.config, "spaces": {s: SPACES[s] for s in spaces},
           "seeds": seeds, "rule": __doc__.split("The answer is stated before the runs: ")[1].split("\n\n")[0],
           "machine": {"python": platform.python_version()}, "runs": {}, "comparisons": {},
           "comparisons_raw": {}, "resampled": "patients (the datalist's groups)" if groups else "cases",
           "scored": "comparisons: each run's output post-processed as its retrain "
           "decided (the product's output); comparisons_raw: the network's output"}
    recorded = recorded_arms(out, args.config)
    for seed in seeds:
        for space in spaces:
            t = time.time()
            arm = recorded.get(space, {}).get(str(seed))
            if arm is None or (space, seed) in reuse or (work / f"{space}_s{seed}" / "best" / "summary.json").is_file():
                arm = record_of(run_one(args.config, space, seed, work, reuse))
            else:
                print(f"{space} seed {seed}: read from {out} (run dir {arm['run_dir']})", flush=True)
            doc["runs"].setdefault(space, {})[str(seed)] = arm
            print(f"{space} seed {seed}: test mean Dice {arm['test_mean_dice']:.4f} "
                  f"({time.time() - t:.0f} s)", flush=True)
            comparisons(doc, groups)
            atomic_write(out, json.dumps(doc, indent=2))
    print(json.dumps(doc["comparisons"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
