"""What does mirror test-time augmentation buy a finished run? (issue 13: "what limits the Dice")

    python scripts/tta_gain.py runs/hippocampus_cpu --out benchmarks/results/hippocampus_tta.json

Scores the run's own model (best/model.pt) on the run's test split twice, exactly as
`medseg-nas evaluate` does: once plainly and once averaged over the 8 mirrorings
(`predict.tta`). Dice and HD95 per class, and the seconds per case, so the gain can be weighed
against an 8x slower prediction. Writes nothing into the run's best/ (scratch under
<run>/tta_study/), so the run's own evaluation is untouched.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from medseg_nas.jsonio import atomic_write
from medseg_nas.rundir import RunDir
from medseg_nas.stages.evaluate import evaluate_cases


def score(summary: dict) -> dict:
    return {
        "mean_dice": round(float(summary["mean_dice"]), 4),
        "classes": {name: {"dice": round(float(c["dice"]["mean"]), 4), "hd95_mm": round(float(c["hd95"]["mean"]), 3)}
                    for name, c in summary["classes"].items()},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    run = RunDir(args.run_dir)
    cases = run.cases("test")
    doc = {"benchmark": "tta_gain", "run_dir": str(run.path), "model": str(run.model_pt), "n_cases": len(cases),
           "device": args.device}
    for name, tta in (("plain", False), ("mirror_tta", True)):
        t0 = time.perf_counter()
        summary = evaluate_cases(run.model_pt, cases, run.path / "tta_study" / name, tta=tta, device=args.device,
                                 save_predictions=False, postprocess=False, log=lambda *_: None)
        doc[name] = {**score(summary), "seconds_per_case": round((time.perf_counter() - t0) / len(cases), 2)}
        print(f"{name}: mean Dice {doc[name]['mean_dice']:.4f} ({doc[name]['seconds_per_case']} s/case)", flush=True)
    doc["gain"] = {"mean_dice": round(doc["mirror_tta"]["mean_dice"] - doc["plain"]["mean_dice"], 4),
                   "classes": {c: round(doc["mirror_tta"]["classes"][c]["dice"] - v["dice"], 4)
                               for c, v in doc["plain"]["classes"].items()}}
    atomic_write(Path(args.out), json.dumps(doc, indent=2))
    print(json.dumps(doc["gain"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
