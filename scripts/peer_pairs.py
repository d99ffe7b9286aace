"""One network of a whole_job_peers record paired against every other network in it.

    python scripts/peer_pairs.py benchmarks/results/acdc_whole_job_90ep_peers.json \
        --network nas_pick_light --data data/ACDC [--retrained-only]

The record stores only `nas_pick` - each network (`paired_vs_pick`). A network added later (e.g.
`nas_pick_light`) is judged against the pick and the peers by the same statistic, so the docs quote
figures this script prints instead of figures typed from a scratch analysis: per test case each
network's Dice averaged over its seeds, the difference NETWORK - other, a 95 % percentile bootstrap
over cases or, where the datalist groups cases (ACDC's two frames of a patient), whole patients
(medseg_nas.bench.controls `paired_vs_pick`, medseg_nas.bench.stats `compare`).

`--also RECORD:NAME=ALIAS` adds a row of another record (e.g. a second run's own model, scored by
`whole_job_peers.py` on its run) under ALIAS; it must have scored the same test cases, or it stops.

`--retrained-only` leaves out every row of a run's own model (`nas_pick` seed 0, trained on the
run's machine) from RECORD, so only rows its peers measured on their own machines are paired; rows
added with `--also` are kept whole (they were asked for by name). Each line names the seeds on both
sides and the slowest/fastest bare pick step of its rows (`machine_spread`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from medseg_nas.bench.controls import paired_vs_pick
from medseg_nas.bench.data import groups_of
from medseg_nas.bench.rebuilt_run import retrained_entry

FIGURES = ("mean_largest_component", "mean")


def interval(iv: dict) -> str:
    return f"{iv['mean']:+.3f} [{iv['low']:+.3f}, {iv['high']:+.3f}]"


def pairs(results: dict, network: str, groups: dict[str, str] | None) -> dict:
    """{other: NETWORK - other figures} over every other network with finished rows."""
    if network not in results:
        raise SystemExit(f"{network!r} is not in the record (it has: {', '.join(results)})")
    out = paired_vs_pick(results, groups, pick=network)
    if not out:
        raise SystemExit(f"{network!r} has no finished row with per-case Dice")
    return out


def merge_rows(results: dict, also: list[str]) -> dict:
    """results plus each `RECORD:NAME=ALIAS` row of another record, after checking its test cases."""
    results = dict(results)
    cases = {c for e in results.values() for r in e.get("runs", []) for c in r.get("per_case_dice", {})}
    for spec in also:
        path, _, name = spec.rpartition(":")
        name, _, alias = name.partition("=")
        other = json.loads(Path(path).read_text())["results"]
        if name not in other:
            raise SystemExit(f"{path}: no row {name!r} (it has: {', '.join(other)})")
        theirs = {c for r in other[name].get("runs", []) for c in r.get("per_case_dice", {})}
        if theirs != cases:
            raise SystemExit(f"{path}: {name!r} scored other test cases ({len(theirs)} against {len(cases)}): "
                             "pairs need the same split")
        alias = alias or f"{name}@{Path(path).stem}"
        if alias in results:
            raise SystemExit(f"{alias!r} is already a row: name the added row with =ALIAS")
        results[alias] = other[name]
    return results


def table(out: dict, network: str) -> str:
    classes = sorted({k for p in out.values() for k in p if isinstance(p[k], dict) and "low" in p[k]} - set(FIGURES))
    head = ["other", f"{network} seeds", "other seeds", *[f"{network} − other, {k}" for k in FIGURES],
            *[f"{k} (raw)" for k in classes], "machine_spread"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for other, p in out.items():
        cells = [other, ",".join(map(str, p["seeds"][network])), ",".join(map(str, p["seeds"][other])),
                 *[interval(p[k]) if k in p else "—" for k in (*FIGURES, *classes)], str(p.get("machine_spread"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("record", help="a whole_job_peers record (benchmarks/results/*_peers.json)")
    ap.add_argument("--network", required=True, help="the row paired against every other (e.g. nas_pick_light)")
    ap.add_argument("--data", help="the run's MSD folder, for whole-patient intervals (ACDC); else per case")
    ap.add_argument("--also", action="append", default=[], metavar="RECORD:NAME=ALIAS",
                    help="add another record's row (same test cases) under ALIAS; repeatable")
    ap.add_argument("--retrained-only", action="store_true",
                    help="leave out RECORD's own-model rows (nas_pick seed 0); --also rows stay")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)
    doc = json.loads(Path(args.record).read_text())
    groups = groups_of(args.data) if args.data else None
    results = doc["results"]
    if args.retrained_only:  # before --also: the rows asked for by name stay whole
        results = {name: retrained_entry(entry) for name, entry in results.items()}
    out = pairs(merge_rows(results, args.also), args.network, groups)
    print(f"{args.record}: {args.network} − each network, over "
          f"{'whole patients' if groups else 'test cases'}{', retrained rows only' if args.retrained_only else ''}\n")
    print(table(out, args.network))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
