"""Issue 27, item 4: the search's pick against controls that could beat it, by the rule stated
before the runs (medseg_nas.bench.controls.RULE).

    python scripts/search_controls.py \
        --search benchmarks/results/hippocampus_controls_samea.json \
        --random benchmarks/results/hippocampus_controls_random.json \
        --out benchmarks/results/hippocampus_search_controls.json

Both inputs are `scripts/whole_job_peers.py` records on whole jobs with the same split: the
searched run's (`nas_pick` and the `small_*` networks) and the random-search run's (`nas_pick`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from medseg_nas.bench.controls import study
from medseg_nas.jsonio import atomic_write


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--search", required=True, help="whole_job_peers record of the searched (SaMEA) run")
    ap.add_argument("--random", required=True, help="whole_job_peers record of the random-search run")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    docs = [json.loads(Path(p).read_text()) for p in (args.search, args.random)]
    if docs[0].get("n_test") != docs[1].get("n_test"):
        raise SystemExit(f"the two records score different test splits ({docs[0].get('n_test')} vs {docs[1].get('n_test')} cases)")
    out = {"benchmark": "search_controls", "inputs": {"search": args.search, "random": args.random},
           "run_dirs": {"search": docs[0].get("run_dir"), "random": docs[1].get("run_dir")}, **study(*docs)}
    atomic_write(Path(args.out), json.dumps(out, indent=2))
    for name, a in out["arms"].items():
        d = a["test_mean_dice"]
        iv = (out["paired_vs"].get(name) or {}).get("mean")
        pair = f"pick - it {iv['mean']:+.4f} [{iv['low']:+.4f}, {iv['high']:+.4f}]" if iv else ""
        print(f"{name:16s} {(a['n_params'] or 0) / 1e3:7.0f} k  seeds {a['seeds']}  "
              f"test Dice {'-' if d is None else f'{d:.4f}'}  {pair}")
    print(("PROVISIONAL " if out["provisional"] else "") + out["verdict"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
