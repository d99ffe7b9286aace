"""best/model.pt: the documented checkpoint format round-trips; foreign files fail clearly."""

import pytest
import torch

from medseg_nas.errors import MedsegError
from medseg_nas.model_io import FORMAT, load_model, read_checkpoint
from medseg_nas.testing.fixtures import GENOME, PLAN, make_checkpoint


def test_round_trip_same_logits(tmp_path):
    path = make_checkpoint(tmp_path / "best" / "model.pt")
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["format"] == FORMAT
    for key in ("genome", "in_channels", "n_classes", "network_plan", "data_plan", "labels", "state_dict"):
        assert key in ckpt
    m = load_model(path)
    assert m.genome == GENOME and m.in_channels == 1 and m.n_classes == 3
    assert m.data_plan.to_dict() == PLAN
    assert m.labels == {0: "background", 1: "a", 2: "b"}
    m2 = load_model(tmp_path)  # a run directory resolves to best/model.pt
    x = torch.randn(1, 1, 16, 16, 8)
    with torch.no_grad():
        assert torch.equal(m.network(x), m2.network(x))
    assert not m.network.training


def test_foreign_files_are_rejected(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(MedsegError, match="not a medseg-nas checkpoint"):
        load_model(tmp_path / "junk.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(MedsegError, match="not a medseg-nas checkpoint"):
        read_checkpoint(tmp_path / "other.pt")
    with pytest.raises(MedsegError, match="does not exist"):
        load_model(tmp_path / "missing.pt")
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07")
    with pytest.raises(MedsegError, match="is an ONNX model: give best/model.pt or best/model.ts"):
        load_model(tmp_path / "model.onnx")


def test_mismatched_weights(tmp_path):
    path = make_checkpoint(tmp_path / "m.pt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["genome"]["n_f"] = 4
    torch.save(ckpt, path)
    with pytest.raises(MedsegError, match="weights do not match"):
        load_model(path)


def test_old_plan_spellings_still_load(tmp_path):
    """A hand-written or older plan (spacing / roi_size, modality as a name, no normalisation or
    sizes) loads as a DataPlan completed from the checkpoint, and predicts with the MONAI-only
    preprocessing it always had."""
    from medseg_nas.inference import Predictor
    from medseg_nas.testing.fixtures import blob_volume, write_nifti

    old = {"spacing": [1.5, 1.5, 2.0], "roi_size": [32, 32, 16], "modality": "MRI", "axcodes": None}
    m = load_model(make_checkpoint(tmp_path / "m.pt", plan=old))
    plan = m.data_plan
    assert (plan.target_spacing, plan.patch_size, plan.axcodes) == ([1.5, 1.5, 2.0], [32, 32, 16], "RAS")
    assert (plan.in_channels, plan.n_classes, plan.modality, plan.normalization) == (1, 3, {0: "MRI"}, [])
    assert plan.labels == m.labels and plan.network_plan == m.network_plan
    labels, _ = Predictor(m, "cpu")(write_nifti(tmp_path / "c.nii.gz", blob_volume()))
    assert labels.shape == (37, 41, 19)
