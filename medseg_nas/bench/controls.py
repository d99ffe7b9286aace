"""Issue 27, item 4: does the search's pick beat controls that could win?

The evidence before this ("the pick beats the smallest genome") used a control that cannot win.
The controls here can: random search's own pick (same space, trial budget, `retrain.max_params`,
retrain recipe) and standard small networks at the pick's size, trained for the pick's retrain
seconds (`scripts/whole_job_peers.py`). The rule was stated in docs/studies/search_strategies.md
before any of them ran, and is applied here unchanged (`RULE`): per test case, each network's Dice
averaged over its seeds; the paired difference pick - control with a 95 % percentile bootstrap
over cases; the search is credited only if the interval lies above 0 against both the random pick
and the best small network. Until every arm has `MIN_SEEDS` seeds the verdict is marked
provisional, so a partial record cannot be quoted as the answer.
"""

from __future__ import annotations

import numpy as np

from medseg_nas.bench.rebuilt_run import retrained_entry
from medseg_nas.bench.stats import compare

MIN_SEEDS = 3
PICK = "search_pick"
RANDOM = "random_pick"
SMALL = ("small_unet", "small_dynunet", "small_segresnet")
RULE = ("per test case, each network's Dice averaged over its seeds; paired difference search pick - control, "
        "95 % percentile bootstrap over cases (10,000 resamples); the pick beats a control if the interval "
        "lies above 0; the search is credited only if it beats the random-search pick and the best small "
        f"network; provisional until every arm has {MIN_SEEDS} seeds (stated 2026-12-03, before any run)")


def _finished_runs(entry: dict | None) -> list[dict]:
    """A whole_job_peers result's runs that were scored (have per-case Dice)."""
    return [r for r in (entry or {}).get("runs", []) if r.get("per_case_dice")]


def _per_seed(entry: dict | None) -> dict[int, dict]:
    """{seed: {case: {class: dice, "mean": dice}}} of a whole_job_peers result's finished runs."""
    return {int(r["seed"]): r["per_case_dice"] for r in _finished_runs(entry)}


def _entries(search_doc: dict, random_doc: dict) -> dict[str, dict | None]:
    """Each arm's whole_job_peers result: the searched run's record holds the pick and the small
    networks, the random-search run's record its pick."""
    res = search_doc.get("results", {})
    return {PICK: res.get("nas_pick"), RANDOM: random_doc.get("results", {}).get("nas_pick"),
            **{name: res.get(name) for name in SMALL}}


def _pick_minus_each(by: dict[str, dict[int, dict]], pick: str, groups: dict[str, str] | None = None) -> dict:
    """{network: compare's pick - network figures} for every network with finished runs; {} without the pick."""
    if not by.get(pick):
        return {}
    return {name: compare({pick: by[pick], name: seeds}, against=name, groups=groups)[f"{pick}-{name}"]
            for name, seeds in by.items() if name != pick and seeds}


def _arm_row(entry: dict | None, seeds: dict[int, dict]) -> dict:
    dice = [float(np.mean([c["mean"] for c in s.values()])) for s in seeds.values()]
    return {"n_params": (entry or {}).get("n_params"), "seeds": sorted(seeds),
            "test_mean_dice": round(float(np.mean(dice)), 4) if dice else None,
            "test_mean_dice_sd": round(float(np.std(dice, ddof=1)), 4) if len(dice) > 1 else None,
            "train_s": (entry or {}).get("train_s")}


def study(search_doc: dict, random_doc: dict) -> dict:
    """Per arm: parameters, seeds, test Dice; paired pick - control intervals; the stated verdict."""
    entries = _entries(search_doc, random_doc)
    by = {name: _per_seed(entry) for name, entry in entries.items()}
    table = {name: _arm_row(entries[name], seeds) for name, seeds in by.items()}
    paired = _pick_minus_each(by, PICK)
    ran_small = [n for n in SMALL if table[n]["test_mean_dice"] is not None]
    best_small = max(ran_small, key=lambda n: table[n]["test_mean_dice"]) if ran_small else None
    beats = {n: paired[n]["mean"]["low"] > 0 for n in paired}
    short = {n: len(s) for n, s in by.items() if len(s) < MIN_SEEDS}
    needed = [RANDOM] + ([best_small] if best_small else [])
    if not best_small or any(n not in paired for n in needed):
        verdict = "not decided: an arm has no finished run"
    elif all(beats[n] for n in needed):
        verdict = "the search's pick beats the random-search pick and the best small network"
    else:
        verdict = "not shown: the search's pick does not beat " + " or ".join(n for n in needed if not beats[n])
    return {"rule": RULE, "arms": table, "best_small": best_small, "paired_vs": paired, "beats": beats,
            "verdict": verdict, "provisional": bool(short), "seeds_short": short}


def paired_vs_pick(results: dict, groups: dict[str, str] | None = None, pick: str = "nas_pick",
                   retrained_only: bool = False) -> dict:
    """{network: pick - network per figure} for every network of a whole_job_peers record's
    `results` with finished per-case rows: each network's Dice averaged over its seeds per test
    case, the interval over cases or, with `groups` ({case: patient}), over whole patients, so a
    peer's record carries the paired figure instead of two unpaired means.

    `retrained_only` leaves out the run's own model (the pick's row with a `source`): it trained
    on the run's machine, the retrained seeds and the peers on the machine(s) the script ran on,
    which on ACDC was up to ~2x slower, so at equal seconds only the retrained seeds share the
    peers' compute. Each pairing carries the bare pick step its rows measured (`bare_step_s`, per
    seed, None for a row not timed: the run's own model, rows older than the measurement) and their
    slowest/fastest ratio (`machine_spread`, None unless every row was timed: an untimed row's machine
    is unknown), so a pairing that mixes machine classes says so instead of being trusted not to."""
    if retrained_only and pick in results:
        results = {**results, pick: retrained_entry(results[pick])}
    by = {name: _per_seed(entry) for name, entry in results.items()}
    steps = {name: _bare_steps(entry) for name, entry in results.items()}
    return {name: {"seeds": {pick: sorted(by[pick]), name: sorted(by[name])}, **pair,
                   **_machines({pick: steps[pick], name: steps[name]})}
            for name, pair in _pick_minus_each(by, pick, groups).items()}


def _bare_steps(entry: dict | None) -> dict[int, float | None]:
    """{seed: the pick's bare step (s) timed on the row's machine} of an entry's finished runs."""
    return {int(r["seed"]): (r.get("machine_speed") or {}).get("pick_bare_step_s_here") for r in _finished_runs(entry)}


def _machines(steps: dict[str, dict[int, float | None]]) -> dict:
    timed = [v for per in steps.values() for v in per.values()]
    return {"bare_step_s": {name: [per[s] for s in sorted(per)] for name, per in steps.items()},
            "machine_spread": round(max(timed) / min(timed), 3) if timed and all(timed) else None}
