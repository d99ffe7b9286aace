"""export: TorchScript / ONNX logits equal PyTorch; the MONAI bundle runs without medseg-nas."""

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch

from medseg_nas.cli import main as cli
from medseg_nas.config import EXPORT_FORMATS
from medseg_nas.stages.export import export_all
from medseg_nas.inference import Predictor
from medseg_nas.model_io import load_model
from medseg_nas.rundir import RunDir
from medseg_nas.testing.fixtures import blob_volume, make_checkpoint, write_nifti


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    ckpt = make_checkpoint(d / "best" / "model.pt")
    case = write_nifti(d / "in" / "case.nii.gz", blob_volume())
    report = export_all(ckpt, d / "best", case_image=case, log=lambda m: None)
    return d, ckpt, case, report


def test_torchscript_and_onnx_match_pytorch(exported):
    d, ckpt, case, report = exported
    assert report["torchscript"]["max_abs_diff"] < 1e-4
    assert report["onnx"]["max_abs_diff"] < 1e-3
    assert json.loads((d / "best" / "export.json").read_text())["onnx"]["opset"] == 17
    assert RunDir(d).exports_current(EXPORT_FORMATS)
    # dynamic spatial axes: a shape never seen at export time
    import onnxruntime as ort

    net = load_model(ckpt).network
    x = torch.randn(1, 1, 24, 40, 8)
    sess = ort.InferenceSession(str(d / "best" / "model.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = net(x).numpy()
        ts = torch.jit.load(str(d / "best" / "model.ts"))(x).numpy()
    assert np.abs(sess.run(None, {"image": x.numpy()})[0] - ref).max() < 1e-3
    assert np.abs(ts - ref).max() < 1e-4


def test_bundle_runs_with_monai_bundle_api(exported, tmp_path):
    from monai.bundle import ConfigParser, run

    d, ckpt, case, _ = exported
    bundle = d / "best" / "bundle"
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    assert meta["network_data_format"]["outputs"]["pred"]["num_channels"] == 3
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser.update({"bundle_root": str(bundle)})
    assert isinstance(parser.get_parsed_content("network"), torch.jit.ScriptModule)
    assert torch.is_grad_enabled()
    run(config_file=str(bundle / "configs" / "inference.json"), bundle_root=str(bundle),
        dataset_dir=str(case), output_dir=str(tmp_path / "out"))
    assert torch.is_grad_enabled()  # an in-process bundle run leaves autograd on for later training
    out = nib.load(str(tmp_path / "out" / "case_seg.nii.gz"))
    ref = nib.load(str(case))
    assert out.shape[:3] == ref.shape and np.allclose(out.affine, ref.affine, atol=1e-5)
    mine, _ = Predictor(load_model(ckpt), "cpu")(case)
    assert (np.asarray(out.dataobj).reshape(ref.shape) == mine).mean() > 0.99


def test_bundle_cli_without_medseg_nas(exported, tmp_path):
    pytest.importorskip("fire", reason="`python -m monai.bundle` needs fire")
    d, _, case, _ = exported
    bundle = d / "best" / "bundle"
    code = (
        "import sys, runpy; sys.modules['medseg_nas'] = None; "  # any `import medseg_nas` now fails
        "sys.argv = ['monai.bundle'] + sys.argv[1:]; runpy.run_module('monai.bundle', run_name='__main__')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, "run", "--config_file", str(bundle / "configs" / "inference.json"),
         "--bundle_root", str(bundle), "--dataset_dir", str(case.parent), "--output_dir", str(tmp_path / "o")],
        capture_output=True, text=True, cwd=tmp_path, timeout=240,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "o" / "case_seg.nii.gz").is_file()


def test_export_stage_cli(tmp_path):
    make_checkpoint(tmp_path / "run" / "best" / "model.pt")
    assert cli(["export", str(tmp_path / "run"), "--format", "onnx"]) == 0
    assert (tmp_path / "run" / "best" / "model.onnx").is_file()
    assert not (tmp_path / "run" / "best" / "model.ts").exists()
    assert cli(["export", str(tmp_path / "nowhere")]) == 1


@pytest.mark.parametrize("norm", [{"scheme": "zscore"}, {"scheme": "ct", "clip": [120.0, 380.0], "mean": 200.0, "std": 80.0}])
@pytest.mark.parametrize("axcodes", ["RAS", "ASR"])
def test_bundle_preprocessing_equals_training_preprocessing(tmp_path, norm, axcodes):
    """The MONAI-only spec in inference.json reproduces medseg_nas.data's inference transforms."""
    data = pytest.importorskip("medseg_nas.data")
    from medseg_nas.inference import build_transforms, preprocess_spec
    from medseg_nas.testing.fixtures import PLAN

    plan = dict(PLAN, normalization=[norm], axcodes=axcodes)
    img = write_nifti(tmp_path / "c.nii.gz", blob_volume())
    ours = build_transforms(preprocess_spec(data.DataPlan.from_dict(plan)))({"image": str(img)})["image"]
    theirs = data.inference_transforms(data.DataPlan.from_dict(plan))({"image": str(img)})["image"]
    assert ours.shape == theirs.shape
    assert torch.allclose(torch.as_tensor(ours), torch.as_tensor(theirs), atol=1e-3)
    assert np.allclose(ours.affine, theirs.affine)
