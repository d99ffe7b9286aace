"""predict: NIfTI in → label map out on the input's exact grid, same preprocessing as training."""

import nibabel as nib
import numpy as np
import pytest
import torch
from torch import nn

from medseg_nas.cli import main as cli
from medseg_nas.errors import DataError, MedsegError
from medseg_nas.inference import Predictor
from medseg_nas.model_io import LoadedModel, load_model
from medseg_nas.predict import predict_files
from medseg_nas.space import NetworkPlan
from pipeline_helpers import AFFINE, PLAN, blob_volume, make_checkpoint, write_nifti


def test_predict_keeps_affine_and_shape(tmp_path):
    model = make_checkpoint(tmp_path / "model.pt")
    img = write_nifti(tmp_path / "in" / "case_a.nii.gz", blob_volume())
    write_nifti(tmp_path / "in" / "case_b.nii", blob_volume((30, 33, 15), seed=1), np.diag([0.9, 0.9, 3.0, 1.0]))
    rc = cli(["predict", str(model), "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--device", "cpu"])
    assert rc == 0
    for name, shape in (("case_a", (37, 41, 19)), ("case_b", (30, 33, 15))):
        ref = nib.load(str(tmp_path / "in" / (name + (".nii.gz" if name == "case_a" else ".nii"))))
        out = nib.load(str(tmp_path / "out" / f"{name}_seg.nii.gz"))
        assert out.shape == shape == ref.shape
        assert np.array_equal(out.affine, ref.affine)
        assert out.get_data_dtype() == np.uint8
        assert set(np.unique(np.asarray(out.dataobj))) <= {0, 1, 2}
    # refuses to overwrite without --force
    assert cli(["predict", str(model), "-i", str(img), "-o", str(tmp_path / "out")]) == 1
    assert cli(["predict", str(model), "-i", str(img), "-o", str(tmp_path / "out"), "--force"]) == 0
    small = write_nifti(tmp_path / "small.nii.gz", blob_volume((20, 20, 8)))
    assert cli(["predict", str(model), "-i", str(small), "-o", str(tmp_path / "out"), "--tta"]) == 0


class Threshold(nn.Module):
    """Class 1 where the (z-scored) intensity is high: its prediction is a known segmentation."""

    def forward(self, x):
        return torch.cat([-4 * x, 4 * x], dim=1)


def test_prediction_is_aligned_with_the_input(tmp_path):
    vol = blob_volume()
    img = write_nifti(tmp_path / "c.nii.gz", vol)
    model = LoadedModel(Threshold(), None, 1, 2, NetworkPlan(), dict(PLAN), {0: "bg", 1: "fg"})
    labels, ref = Predictor(model, "cpu")(img)
    expected = vol > 250  # the blob; z-score threshold 0 separates blob from background
    agree = (labels.astype(bool) == expected).mean()
    assert labels.shape == vol.shape and agree > 0.97, agree
    # TTA of a mirror-equivariant network changes nothing
    labels_tta, _ = Predictor(model, "cpu", tta=True)(img)
    assert (labels_tta == labels).mean() > 0.999


def test_wrong_channel_count_and_bad_inputs(tmp_path):
    model = make_checkpoint(tmp_path / "model.pt")
    two = write_nifti(tmp_path / "two.nii.gz", blob_volume(channels=2))
    with pytest.raises(DataError, match="2 channel\\(s\\) but the model expects 1"):
        predict_files(model, [two], tmp_path / "out")
    assert cli(["predict", str(model), "-i", str(tmp_path / "nothing"), "-o", str(tmp_path / "o")]) == 1
    (tmp_path / "notes.txt").write_text("x")
    assert cli(["predict", str(model), "-i", str(tmp_path / "notes.txt"), "-o", str(tmp_path / "o")]) == 1


def test_torchscript_model_predicts_like_checkpoint(tmp_path):
    from medseg_nas.export import export_torchscript

    ckpt = make_checkpoint(tmp_path / "model.pt")
    export_torchscript(load_model(ckpt), tmp_path / "model.ts")
    img = write_nifti(tmp_path / "c.nii.gz", blob_volume())
    a, _ = Predictor(load_model(ckpt), "cpu")(img)
    b, _ = Predictor(load_model(tmp_path / "model.ts"), "cpu")(img)
    assert (a == b).mean() > 0.999


def test_multichannel_input(tmp_path):
    """A 2-channel model on a 4-D (X, Y, Z, C) NIfTI writes a 3-D label map on the input grid."""
    plan = dict(PLAN, in_channels=2, normalization=[{"scheme": "zscore"}] * 2, modality={"0": "T2", "1": "ADC"})
    model = make_checkpoint(tmp_path / "model.pt", in_channels=2, plan=plan)
    img = write_nifti(tmp_path / "mc.nii.gz", blob_volume((24, 26, 10), channels=2))
    (out,) = predict_files(model, [img], tmp_path / "out", log=lambda m: None)
    ref, seg = nib.load(str(img)), nib.load(str(out))
    assert seg.shape == ref.shape[:3] and np.array_equal(seg.affine, ref.affine)
    one = write_nifti(tmp_path / "one.nii.gz", blob_volume((24, 26, 10)))
    with pytest.raises(DataError, match="1 channel\\(s\\) but the model expects 2"):
        predict_files(model, [one], tmp_path / "out2")
