"""A whole job run on a GPU by scripts/gpu_check.sh as a record, also when its time limit cut it short.

A finished job has scripts/whole_job_summary.py; this reads what any run directory holds after its
search (trials.sqlite, search.log) and, from the job's console log, how far the retrain got, so a
lease that ran out mid-retrain still gives search seconds, per-trial time split (train / data wait /
validation), peak GPU memory and the retrain's step rate.

    python scripts/gpu_job_record.py RUN_DIR JOB_LOG --out benchmarks/results/gpu_h200_whole_job.json
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import datetime
from pathlib import Path

from medseg_nas.jsonio import atomic_write
from medseg_nas.trial_store import TrialStore

_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d) ")
_BAR = re.compile(r"trial (\w+):\s+\d+%\|[^|]*\|\s*(\d+)/(\d+) \[(\d+):(\d+)<[^,]*,\s*([\d.]+)it/s")


def search_seconds(search_log: Path) -> float | None:
    """First to last time stamp of the search log (start line to the stop line)."""
    stamps = [datetime.fromisoformat(m.group(1)) for line in search_log.read_text().splitlines()
              if (m := _STAMP.match(line))]
    return (stamps[-1] - stamps[0]).total_seconds() if len(stamps) > 1 else None


def retrain_progress(job_log: Path) -> dict | None:
    """The last progress bar after the log's retrain header (the pick keeps its search key): steps, seconds, rate."""
    text = job_log.read_text(errors="replace")
    if "=== retrain" not in text:
        return None
    last = None
    for part in text.split("=== retrain", 1)[1].replace("\r", "\n").splitlines():
        m = _BAR.search(part)
        if m:
            last = m
    if last is None:
        return None
    done, total = int(last.group(2)), int(last.group(3))
    secs = int(last.group(4)) * 60 + int(last.group(5))
    return {"steps_done": done, "steps_budget": total, "seconds": secs, "steps_per_s": round(done / secs, 1) if secs else None,
            "finished": done == total}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("job_log")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    run = Path(args.run_dir)
    with TrialStore(run / "trials.sqlite") as store:
        rows = store.rows()
    trials, totals = [], {"train_s": 0.0, "val_s": 0.0, "data_wait_s": 0.0, "seconds": 0.0}
    for r in rows:
        res = r.result or {}
        t = res.get("timing") or {}
        trials.append({"id": r.id, "genome": r.key, "status": r.status, "n_params": r.n_params, "f1": r.f1,
                       "val_dice": res.get("val_dice"), "seconds": r.seconds, "peak_mem_mb": res.get("peak_mem_mb"),
                       "device": res.get("device"), "step_ms": t.get("step_ms"),
                       "data_wait_fraction": t.get("data_wait_fraction")})
        for k in ("train_s", "val_s", "data_wait_s"):
            totals[k] += t.get(k) or 0.0
        totals["seconds"] += r.seconds or 0.0
    doc = {"benchmark": "gpu_whole_job", "run_dir": str(run), "search_s": search_seconds(run / "search.log"),
           "trials": trials, "trial_totals": {k: round(v, 1) for k, v in totals.items()},
           "retrain": retrain_progress(Path(args.job_log)),
           "finished": (run / "best" / "summary.json").is_file()}
    if (run / "stage_times.json").is_file():
        doc["stage_times"] = json.loads((run / "stage_times.json").read_text())
    atomic_write(Path(args.out), json.dumps(doc, indent=2))
    print(json.dumps({k: doc[k] for k in ("search_s", "trial_totals", "retrain", "finished")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
