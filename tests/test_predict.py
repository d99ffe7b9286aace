"""predict: NIfTI in → label map out on the input's exact grid, same preprocessing as training."""

import re

import nibabel as nib
import numpy as np
import pytest
import torch
from torch import nn

from medseg_nas.cli import main as cli
from medseg_nas.data import DataPlan
from medseg_nas.errors import DataError
from medseg_nas.inference import Predictor
from medseg_nas.model_io import LoadedModel, load_model
from medseg_nas.stages.predict import predict_files
from medseg_nas.space import NetworkPlan
from medseg_nas.testing.fixtures import PLAN, blob_volume, make_checkpoint, write_nifti


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
    model = LoadedModel(Threshold(), None, 1, 2, NetworkPlan(), DataPlan.from_dict(PLAN), {0: "bg", 1: "fg"})
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
    from medseg_nas.stages.export import export_torchscript

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


# --- batch predict: a bad file is reported and skipped, the batch finishes (issue 10, item 8) ---

def _cli(capsys, *argv):
    rc = cli(["predict", *map(str, argv), "--device", "cpu"])
    cap = capsys.readouterr()
    assert "Traceback" not in cap.out + cap.err
    return rc, cap.out, cap.err


def test_batch_reports_bad_files_and_writes_the_others(tmp_path, capsys):
    model = make_checkpoint(tmp_path / "model.pt")
    src = tmp_path / "in"
    trunc = write_nifti(src / "a_truncated.nii.gz", blob_volume((20, 20, 8)))
    trunc.write_bytes(trunc.read_bytes()[: len(trunc.read_bytes()) // 2])
    nib.save(nib.Nifti1Image(np.zeros((20, 20), np.float32), np.eye(4)), str(src / "b_slice.nii.gz"))
    (src / "c_junk.nii.gz").write_bytes(b"not a volume")
    write_nifti(src / "d_good.nii.gz", blob_volume((20, 20, 8)))
    rc, out, err = _cli(capsys, model, "-i", src, "-o", tmp_path / "out")
    assert rc == 1
    assert nib.load(str(tmp_path / "out" / "d_good_seg.nii.gz")).shape == (20, 20, 8)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["d_good_seg.nii.gz"]
    lines = err.strip().splitlines()
    assert lines[0] == "error: 3 of 4 input(s) failed:" and len(lines) == 4, err
    by_file = {name: next(line for line in lines[1:] if name in line) for name in ("a_truncated", "b_slice", "c_junk")}
    assert "EOFError" in by_file["a_truncated"] and "LoadImaged" not in err  # the real cause, not MONAI's wrapper
    assert "2D image with shape (20, 20)" in by_file["b_slice"]
    assert "not a gzip file" in by_file["c_junk"]
    assert "1 written, 0 kept, 3 failed of 4" in out
    # the library call raises the input's own error, after the rest of the batch
    with pytest.raises(DataError, match="b_slice.nii.gz is a 2D image"):
        predict_files(model, [src / "b_slice.nii.gz"], tmp_path / "out2", log=lambda m: None)


def test_skip_existing_continues_an_interrupted_batch(tmp_path, capsys):
    model = make_checkpoint(tmp_path / "model.pt")
    src, out = tmp_path / "in", tmp_path / "out"
    for i, name in enumerate("abc"):
        write_nifti(src / f"{name}.nii.gz", blob_volume((20, 20, 8), seed=i))
    assert _cli(capsys, model, "-i", src, "-o", out)[0] == 0
    kept = (out / "a_seg.nii.gz").stat().st_mtime_ns
    (out / "b_seg.nii.gz").write_bytes((out / "b_seg.nii.gz").read_bytes()[:40])  # cut off mid-write
    (out / "c_seg.nii.gz").unlink()  # never written
    rc, _, err = _cli(capsys, model, "-i", src, "-o", out)
    assert rc == 1 and "--skip-existing" in err and len(err.strip().splitlines()) == 1
    rc, stdout, _ = _cli(capsys, model, "-i", src, "-o", out, "--skip-existing")
    assert rc == 0 and "2 written, 1 kept, 0 failed of 3" in stdout
    # what each volume cost on this machine, and the median over those segmented (not the kept one)
    timing = re.search(r"; (\d+) ms per volume \(median of 2, (\d+)-(\d+); cpu, (\d+) threads\)", stdout)
    assert timing and int(timing[2]) <= int(timing[1]) <= int(timing[3]), stdout
    assert (out / "a_seg.nii.gz").stat().st_mtime_ns == kept  # not redone
    for name in "bc":
        assert nib.load(str(out / f"{name}_seg.nii.gz")).get_fdata().shape == (20, 20, 8)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no partial files left
    with pytest.raises(SystemExit):  # the two flags contradict each other
        cli(["predict", str(model), "-i", str(src), "-o", str(out), "--skip-existing", "--force"])


def test_output_folder_seg_files_are_never_inputs(tmp_path, capsys):
    from medseg_nas.stages.predict import find_inputs

    model = make_checkpoint(tmp_path / "model.pt")
    src = tmp_path / "in"
    write_nifti(src / "a.nii.gz", blob_volume((20, 20, 8)))
    write_nifti(src / "a_seg.nii.gz", blob_volume((20, 20, 8)).astype(np.uint8))  # an earlier run's output
    write_nifti(src / "segs" / "x_seg.nii.gz", blob_volume((20, 20, 8)).astype(np.uint8))
    (src / ".a_seg.partial-1.nii.gz").write_bytes(b"")
    assert find_inputs(src, src) == [src / "a.nii.gz"]
    assert find_inputs(src, src / "segs") == [src / "a.nii.gz", src / "a_seg.nii.gz"]  # not predict's folder
    rc, _, err = _cli(capsys, model, "-i", src, "-o", src, "--force")
    assert rc == 0, err
    assert not (src / "a_seg_seg.nii.gz").exists()
    assert nib.load(str(src / "a_seg.nii.gz")).get_data_dtype() == np.uint8
    only_outputs = tmp_path / "only"
    write_nifti(only_outputs / "a_seg.nii.gz", blob_volume((20, 20, 8)).astype(np.uint8))
    rc, _, err = _cli(capsys, model, "-i", only_outputs, "-o", only_outputs)
    assert rc == 1 and "no .nii / .nii.gz files besides 1 _seg.nii.gz output" in err


def _empty(path):
    path.write_bytes(b"")  # an interrupted copy
    return path


def _scripted(tmp_path, name, meta: bytes | str):
    net = torch.jit.script(Threshold())
    path = tmp_path / name
    torch.jit.save(net, str(path), _extra_files={"medseg_nas.json": meta})
    return path


@pytest.mark.parametrize("make, expected", [
    (lambda d: _empty(d / "empty.pt"), "empty.pt is empty (0 bytes)"),
    (lambda d: _empty(d / "empty.ts"), "empty.ts is empty (0 bytes)"),
    (lambda d: _scripted(d, "notjson.ts", "{not json"), "notjson.ts: its medseg_nas.json metadata is not valid JSON"),
    (lambda d: _scripted(d, "nokeys.ts", '{"labels": {}}'), "nokeys.ts: refusing model metadata"),
    (lambda d: _scripted(d, "list.ts", "[1, 2]"), "list.ts: refusing model metadata"),
    (lambda d: _scripted(d, "badint.ts", '{"n_classes": "three", "in_channels": 1}'), "badint.ts: refusing model metadata"),
])
def test_bad_model_files_one_clear_error(tmp_path, capsys, make, expected):
    model = make(tmp_path)
    img = write_nifti(tmp_path / "c.nii.gz", blob_volume((20, 20, 8)))
    rc, _, err = _cli(capsys, model, "-i", img, "-o", tmp_path / "out")
    lines = err.strip().splitlines()
    assert rc == 1 and len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], err


def test_error_chain_root_cause():
    from medseg_nas.inference import describe_error

    try:
        try:
            raise EOFError("Compressed file ended before the end-of-stream marker was reached")
        except EOFError as inner:
            raise RuntimeError("applying transform <monai.transforms.io.dictionary.LoadImaged object>") from inner
    except RuntimeError as exc:
        assert describe_error(exc) == "EOFError: Compressed file ended before the end-of-stream marker was reached"
