"""The paired per-case comparison the ablations state their claims with (bench/stats.py)."""

import pytest

from medseg_nas.bench.stats import paired_against


def _row(variant, seed, means):
    return {"variant": variant, "seed": seed, "per_case_dice": {f"c{i}": {"mean": m} for i, m in enumerate(means)}}


def test_paired_against_averages_seeds_per_case_and_bounds_the_difference():
    rows = [_row("base", 0, [0.8, 0.7, 0.9, 0.6]), _row("base", 1, [0.82, 0.72, 0.88, 0.62]),
            _row("worse", 0, [0.7, 0.6, 0.8, 0.5]), _row("worse", 1, [0.72, 0.6, 0.78, 0.52]),
            _row("one_seed", 1, [0.82, 0.72, 0.88, 0.62]), {"variant": "failed", "seed": 0}]
    out = paired_against(rows, "base")
    assert set(out) == {"worse", "one_seed"}  # the control and rows without per-case Dice are not compared
    w = out["worse"]
    assert w["mean"] == pytest.approx(-0.1025, abs=1e-4) and w["seeds"] == [0, 1] and w["n_cases"] == 4
    assert w["low"] <= w["mean"] <= w["high"] < 0
    same = out["one_seed"]  # only seed 1 is shared, and it is identical to base's seed 1
    assert same["seeds"] == [1] and same["mean"] == 0 and same["low"] == same["high"] == 0
    assert paired_against(rows, "absent") == {}


def test_compare_pairs_only_the_figures_every_row_has():
    """Rows scored before a figure existed (mean_largest_component) pair with newer rows on the
    figures they share, instead of failing on the missing key."""
    from medseg_nas.bench.stats import compare

    old = {f"c{i}": {"a": 0.8, "mean": 0.8} for i in range(6)}
    new = {f"c{i}": {"a": 0.9, "mean": 0.9, "mean_largest_component": 0.95} for i in range(6)}
    out = compare({"full": {0: old}, "3d": {0: new, 1: new}})
    assert set(out["3d-full"]) == {"a", "mean", "verdict"}
    assert out["3d-full"]["mean"]["mean"] == pytest.approx(0.1)


def test_grouped_bootstrap_resamples_whole_patients_and_is_wider_when_frames_agree():
    """Two frames of one patient that move together are one observation, not two: resampling them
    apart (per case) narrows the interval; resampling patients must not."""
    import numpy as np

    from medseg_nas.bench.stats import paired_interval

    per_patient = np.array([0.05, -0.02, 0.08, 0.01, -0.04, 0.06, 0.03, 0.00])
    diffs = np.repeat(per_patient, 2)  # ED and ES of each patient identical
    groups = [f"p{i}" for i in range(8) for _ in range(2)]
    by_case = paired_interval(diffs)
    by_patient = paired_interval(diffs, groups=groups)
    assert by_case["unit"] == "case" and by_patient["unit"] == "group" and by_patient["n_groups"] == 8
    assert by_patient["mean"] == by_case["mean"]
    assert by_patient["high"] - by_patient["low"] > 1.2 * (by_case["high"] - by_case["low"])
    # one case per group is the plain case bootstrap
    assert paired_interval(diffs, groups=[str(i) for i in range(16)]) == by_case


def test_case_groups_and_the_comparisons_use_the_datalists_patients():
    from medseg_nas.bench.stats import compare, mean_dice_ci
    from medseg_nas.data import case_groups

    datalist = [{"id": f"patient{p}_{f}", "group": f"patient{p}"} for p in range(6) for f in ("ED", "ES")]
    datalist.append({"id": "solo"})
    groups = case_groups(datalist)
    assert groups["patient3_ES"] == "patient3" and groups["solo"] == "solo"
    cases = {c: {"mean": 0.8 + 0.01 * i} for i, c in enumerate(groups)}
    other = {c: {"mean": v["mean"] - 0.02 * (i % 3)} for i, (c, v) in enumerate(cases.items())}
    iv = compare({"full": {0: cases}, "3d": {0: other}}, groups=groups)["3d-full"]["mean"]
    assert iv["unit"] == "group" and iv["n_groups"] == 7 and iv["n_cases"] == 13
    ci = mean_dice_ci([{"id": c, "mean_dice": v["mean"]} for c, v in cases.items()], groups=groups)
    assert ci["unit"] == "group" and ci["n_groups"] == 7 and "groups" in ci["method"]
    assert mean_dice_ci([{"id": c, "mean_dice": v["mean"]} for c, v in cases.items()])["unit"] == "case"


def test_groups_of_reads_the_datalists_groups_and_falls_back_to_cases(tmp_path):
    """The benchmarks' patient groups come from the MSD folder's dataset.json (ACDC's prepare writes
    "group"); a folder that is not here, or one without shared groups, resamples cases."""
    import json

    from medseg_nas.bench.data import groups_of

    def folder(name, entries):
        root = tmp_path / name
        for sub in ("imagesTr", "labelsTr"):
            (root / sub).mkdir(parents=True)
        training = []
        for case, group in entries:
            for sub in ("imagesTr", "labelsTr"):
                (root / sub / f"{case}.nii.gz").write_bytes(b"")
            training.append({"image": f"./imagesTr/{case}.nii.gz", "label": f"./labelsTr/{case}.nii.gz",
                             **({"group": group} if group else {})})
        (root / "dataset.json").write_text(json.dumps({"name": name, "labels": {"0": "background", "1": "LV"},
                                                       "modality": {"0": "MRI"}, "training": training}))
        return root

    acdc = folder("acdc", [("patient001_ED", "patient001"), ("patient001_ES", "patient001"), ("patient002_ED", "patient002")])
    assert groups_of(acdc) == {"patient001_ED": "patient001", "patient001_ES": "patient001", "patient002_ED": "patient002"}
    assert groups_of(folder("msd", [("hippo_001", None), ("hippo_002", None)])) is None
    assert groups_of(tmp_path / "absent") is None
