"""Metric correctness on hand-made volumes, empty-structure conventions, writers."""

import csv
import json
import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from medseg_nas.metrics import (
    case_metrics,
    case_metrics_detail,
    confusion_counts,
    dice_from_confusion,
    evaluate_predictions,
    metric_rows,
    summarise,
    write_case_csv,
    write_summary_json,
)
from medseg_nas.sliding_window import mirror_axes, sliding_window


def cube(shape, lo, hi, value=1):
    a = np.zeros(shape, np.uint8)
    a[tuple(slice(l, h) for l, h in zip(lo, hi))] = value
    return a


def surface_distances(a, b, spacing):
    """Independent reference: distances (mm) from a's surface voxels to b's surface voxels."""
    def surf(m):
        return m & ~ndimage.binary_erosion(m)
    sa, sb = surf(a.astype(bool)), surf(b.astype(bool))
    dt = ndimage.distance_transform_edt(~sb, sampling=spacing)
    return dt[sa]


def test_known_dice():
    gt = cube((20, 20, 20), (5, 5, 5), (15, 15, 15))  # 1000 voxels
    pred = cube((20, 20, 20), (5, 5, 10), (15, 15, 20))  # 10×10×10 shifted by 5 on z: overlap 500
    m = case_metrics(pred, gt, (1, 1, 1), [1])
    assert m[1]["dice"] == pytest.approx(2 * 500 / 2000)
    assert set(m[1]) == {"dice", "hd95", "asd"}


def test_identical_is_perfect():
    gt = cube((16, 16, 16), (3, 3, 3), (10, 12, 9))
    m = case_metrics(gt, gt, (0.7, 0.7, 2.5), [1])[1]
    assert m == {"dice": 1.0, "hd95": 0.0, "asd": 0.0}


@pytest.mark.parametrize("axis,spacing", [(2, (0.8, 0.8, 3.0)), (0, (1.5, 0.5, 4.0))])
def test_hd95_shifted_cube_anisotropic(axis, spacing):
    shape = (24, 24, 24)
    gt = cube(shape, (6, 6, 6), (16, 16, 16))
    lo, hi = [6, 6, 6], [16, 16, 16]
    lo[axis] += 1
    hi[axis] += 1
    pred = cube(shape, lo, hi)
    m = case_metrics(pred, gt, spacing, [1])[1]
    # a one-voxel shift along `axis` moves ≥ 1/6 of the surface by exactly spacing[axis]
    assert m["hd95"] == pytest.approx(spacing[axis], rel=1e-4)
    ref = np.concatenate([surface_distances(pred, gt, spacing), surface_distances(gt, pred, spacing)]).mean()
    assert m["asd"] == pytest.approx(ref, rel=1e-3)
    assert m["dice"] == pytest.approx(2 * 900 / 2000)


def test_multiclass_and_spacing_scales_distances():
    a = cube((20, 20, 20), (2, 2, 2), (8, 8, 8), 1) + cube((20, 20, 20), (10, 10, 10), (16, 16, 16), 2)
    b = cube((20, 20, 20), (2, 2, 4), (8, 8, 10), 1) + cube((20, 20, 20), (10, 10, 10), (16, 16, 16), 2)
    m1 = case_metrics(b, a, (1, 1, 1), [1, 2])
    m2 = case_metrics(b, a, (2, 2, 2), [1, 2])
    assert m1[2]["dice"] == 1.0 and m1[2]["hd95"] == 0.0
    assert m2[1]["hd95"] == pytest.approx(2 * m1[1]["hd95"])
    assert m2[1]["asd"] == pytest.approx(2 * m1[1]["asd"])


def test_empty_conventions():
    shape = (10, 12, 14)
    spacing = (1.0, 2.0, 3.0)
    diag = math.sqrt(10**2 + 24**2 + 42**2)
    empty = np.zeros(shape, np.uint8)
    some = cube(shape, (2, 2, 2), (5, 5, 5))
    both = case_metrics_detail(empty, empty, spacing, [1])[1]
    assert (both["dice"], both["hd95"], both["asd"], both["note"]) == (1.0, 0.0, 0.0, "both empty")
    miss = case_metrics_detail(empty, some, spacing, [1])[1]
    assert (miss["dice"], miss["note"]) == (0.0, "empty prediction")
    assert miss["hd95"] == pytest.approx(diag) and miss["asd"] == pytest.approx(diag)
    fp = case_metrics_detail(some, empty, spacing, [1])[1]
    assert (fp["dice"], fp["note"]) == (0.0, "empty ground truth")
    assert fp["hd95"] == pytest.approx(diag)
    for row in (both, miss, fp):
        assert all(math.isfinite(row[k]) for k in ("dice", "hd95", "asd"))


def test_bad_input():
    with pytest.raises(ValueError, match="shape"):
        case_metrics(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)), (1, 1, 1), [1])
    with pytest.raises(ValueError, match="spacing"):
        case_metrics(np.zeros((4, 4, 4)), np.zeros((4, 4, 4)), (1, 1), [1])


def test_confusion_dice_matches_case_metrics():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 3, (12, 12, 12))
    pred = np.where(rng.random(gt.shape) < 0.8, gt, rng.integers(0, 3, gt.shape))
    fast = dice_from_confusion(confusion_counts(torch.from_numpy(pred), torch.from_numpy(gt), 3))
    slow = case_metrics(pred, gt, (1, 1, 1), [1, 2])
    assert fast == pytest.approx([slow[1]["dice"], slow[2]["dice"]])
    # an absent class in both is perfect, like case_metrics
    assert dice_from_confusion(confusion_counts(torch.zeros(5, dtype=torch.long), torch.zeros(5), 2)) == [1.0]


def test_writers(tmp_path):
    gt = cube((12, 12, 12), (2, 2, 2), (8, 8, 8))
    rows = metric_rows("c1", case_metrics_detail(gt, gt, (1, 1, 1), [1, 2]), {1: "a", 2: "b"})
    rows += metric_rows("c2", case_metrics_detail(np.zeros_like(gt), gt, (1, 1, 1), [1, 2]), {1: "a", 2: "b"})
    p = write_case_csv(rows, tmp_path / "metrics.csv")
    got = list(csv.DictReader(p.open()))
    assert len(got) == 4 and got[0]["case"] == "c1" and got[0]["name"] == "a"
    assert {r["note"] for r in got} == {"", "both empty", "empty prediction"}
    s = write_summary_json(rows, tmp_path / "summary.json")
    assert json.loads((tmp_path / "summary.json").read_text()) == s
    assert s["n_cases"] == 2
    assert s["classes"]["a"]["dice"]["mean"] == pytest.approx(0.5)
    assert s["classes"]["a"]["dice"]["std"] == pytest.approx(0.5)
    assert s["classes"]["a"]["empty_prediction"] == 1
    assert s["classes"]["b"]["both_empty"] == 2
    assert all(math.isfinite(v) for v in s["mean"].values())
    assert summarise([])["n_cases"] == 0


def test_evaluate_predictions_reads_spacing_from_header(tmp_path):
    nib = pytest.importorskip("nibabel")
    gt = cube((16, 16, 10), (4, 4, 2), (12, 12, 8))
    affine = np.diag([0.5, 0.5, 3.0, 1.0])
    nib.save(nib.Nifti1Image(gt.astype(np.float32), affine), str(tmp_path / "lab.nii.gz"))
    nib.save(nib.Nifti1Image(gt.astype(np.float32), affine), str(tmp_path / "img.nii.gz"))
    shifted = np.roll(gt, 1, axis=2)

    def predict(path):
        return shifted, None

    cases = [{"id": "x", "image": str(tmp_path / "img.nii.gz"), "label": str(tmp_path / "lab.nii.gz")}]
    rows, summary = evaluate_predictions(predict, cases, {0: "bg", 1: "fg"}, tmp_path / "m.csv", tmp_path / "s.json")
    assert rows[0]["hd95"] == pytest.approx(3.0)
    assert (tmp_path / "m.csv").is_file() and summary["classes"]["fg"]["n_cases"] == 1


def test_sliding_window_logits_shape():
    net = torch.nn.Conv3d(1, 3, 3, padding=1)
    img = torch.randn(1, 20, 18, 11)
    with torch.inference_mode():
        out = sliding_window(net.eval(), img, (8, 8, 8), sw_batch_size=4, overlap=0.25)
    assert out.shape == (3, 20, 18, 11)


def test_sliding_window_probabilities_with_mirror_tta():
    """A 1×1×1 convolution commutes with flips: the 8-mirror mean equals the plain softmax."""
    torch.manual_seed(0)
    net = torch.nn.Conv3d(1, 3, 1).eval()
    img = torch.randn(1, 20, 18, 11)
    assert len(mirror_axes(True)) == 8 and mirror_axes(False) == [()]
    with torch.inference_mode():
        plain = sliding_window(net, img, (8, 8, 8), output_device="cpu", softmax=True)
        tta = sliding_window(net, img, (8, 8, 8), output_device="cpu", softmax=True, tta=True)
    assert plain.dtype == torch.float32 and tta.shape == (3, 20, 18, 11)
    torch.testing.assert_close(plain.sum(0), torch.ones(20, 18, 11))
    torch.testing.assert_close(tta, plain, atol=1e-5, rtol=1e-5)
