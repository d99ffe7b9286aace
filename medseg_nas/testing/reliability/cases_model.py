"""Bad model files, predict inputs and outputs, the command line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from medseg_nas.testing.reliability.builders import (  # noqa: F401 — not every module uses every helper
    DOLLAR_EXPRESSION, held_lock, msd_download, prepare_cmd, run_cmd, searched_run_dir, synthetic_dataset,
    tiny_checkpoint, write_config, write_nifti)
from medseg_nas.testing.reliability.harness import case


@case("model file", "`predict` with a model file that does not exist")
def predict_missing_model(d: Path) -> list[str]:
    write_nifti(d / "img.nii.gz", (16, 16, 16))
    return ["predict", str(d / "model.pt"), "-i", str(d / "img.nii.gz"), "-o", str(d / "out")]


@case("model file", "`predict` with a foreign PyTorch file")
def predict_foreign_pt(d: Path) -> list[str]:
    import torch

    torch.save({"weights": torch.zeros(3)}, d / "other.pt")
    write_nifti(d / "img.nii.gz", (16, 16, 16))
    return ["predict", str(d / "other.pt"), "-i", str(d / "img.nii.gz"), "-o", str(d / "out")]


@case("model file", "`predict` with an ONNX file")
def predict_onnx(d: Path) -> list[str]:
    (d / "model.onnx").write_bytes(b"\x08\x07")
    write_nifti(d / "img.nii.gz", (16, 16, 16))
    return ["predict", str(d / "model.onnx"), "-i", str(d / "img.nii.gz"), "-o", str(d / "out")]


@case("model file", "`predict` on an input that does not exist")
def predict_missing_input(d: Path) -> list[str]:
    tiny_checkpoint(d / "model.pt")
    return ["predict", str(d / "model.pt"), "-i", str(d / "nothing.nii.gz"), "-o", str(d / "out")]


@case("model file", "`predict` on a 2-channel image with a 1-channel model")
def predict_wrong_channels(d: Path) -> list[str]:
    tiny_checkpoint(d / "model.pt")
    write_nifti(d / "two.nii.gz", (16, 16, 16, 2))
    return ["predict", str(d / "model.pt"), "-i", str(d / "two.nii.gz"), "-o", str(d / "out")]


def _predict(d: Path, model: Path) -> list[str]:
    write_nifti(d / "img.nii.gz", (16, 16, 16))
    return ["predict", str(model), "-i", str(d / "img.nii.gz"), "-o", str(d / "out")]


@case("model file", "`predict` with an empty model file (0 bytes, an interrupted copy)")
def predict_empty_model(d: Path) -> list[str]:
    (d / "model.pt").write_bytes(b"")
    return _predict(d, d / "model.pt")


@case("model file", "`predict` with a checkpoint whose data_plan.axcodes is a `$` expression (code)")
def predict_hostile_checkpoint(d: Path) -> list[str]:
    return _predict(d, tiny_checkpoint(d / "model.pt", normalization=None, axcodes=DOLLAR_EXPRESSION))


@case("model file", "`predict` with a TorchScript file whose metadata axcodes is a `$` expression (code)")
def predict_hostile_torchscript(d: Path) -> list[str]:
    from medseg_nas.stages.export import export_torchscript
    from medseg_nas.model_io import load_model

    model = load_model(tiny_checkpoint(d / "good.pt"))
    model.data_plan = dataclasses.replace(model.data_plan, normalization=[], axcodes=DOLLAR_EXPRESSION)
    return _predict(d, export_torchscript(model, d / "model.ts"))


@case("model file", "`predict` with a TorchScript file whose metadata is not JSON")
def predict_torchscript_bad_metadata(d: Path) -> list[str]:
    import torch

    from medseg_nas.model_io import TS_META

    net = torch.jit.trace(torch.nn.Conv3d(1, 2, 1), torch.zeros(1, 1, 4, 4, 4))
    torch.jit.save(net, str(d / "model.ts"), _extra_files={TS_META: "{not json"})
    return _predict(d, d / "model.ts")


# batch predict over a folder (medseg_nas/stages/predict.py): a bad file is reported, the others written

def _batch(d: Path) -> list[str]:
    """predict over d/in with a real model; the case has put its files there."""
    return ["predict", str(tiny_checkpoint(d / "model.pt")), "-i", str(d / "in"), "-o", str(d / "out")]


def _truncated(path: Path) -> Path:
    write_nifti(path, (16, 16, 16))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


@case("batch predict", "`predict` on a folder with one truncated .nii.gz among good ones", summary=True)
def batch_one_truncated(d: Path) -> list[str]:
    for name in ("a", "c"):
        write_nifti(d / "in" / f"{name}.nii.gz", (16, 16, 16))
    _truncated(d / "in" / "b.nii.gz")
    return _batch(d)


@case("batch predict", "`predict` on a folder with a truncated file and a 2D image among good ones", summary=True)
def batch_two_bad(d: Path) -> list[str]:
    write_nifti(d / "in" / "a.nii.gz", (16, 16, 16))
    _truncated(d / "in" / "b.nii.gz")
    write_nifti(d / "in" / "c_slice.nii.gz", (16, 16))
    write_nifti(d / "in" / "d.nii.gz", (16, 16, 16))
    return _batch(d)


@case("batch predict", "`predict` on a 2D NIfTI image")
def predict_2d(d: Path) -> list[str]:
    tiny_checkpoint(d / "model.pt")
    write_nifti(d / "slice.nii.gz", (16, 16))
    return ["predict", str(d / "model.pt"), "-i", str(d / "slice.nii.gz"), "-o", str(d / "out")]


@case("batch predict", "`predict` on a folder holding only an earlier run's `_seg` outputs")
def batch_only_outputs(d: Path) -> list[str]:
    write_nifti(d / "in" / "a_seg.nii.gz", (16, 16, 16))
    return ["predict", str(tiny_checkpoint(d / "model.pt")), "-i", str(d / "in"), "-o", str(d / "in")]


@case("batch predict", "`predict` on an image with one NaN voxel")
def predict_nan_voxel(d: Path) -> list[str]:
    import nibabel as nib
    import numpy as np

    path = write_nifti(d / "one_nan_voxel.nii.gz", (16, 16, 16))
    img = nib.load(str(path))
    x = np.asarray(img.dataobj, dtype=np.float32)
    x[3, 4, 5] = np.nan
    nib.save(nib.Nifti1Image(x, img.affine), str(path))
    return ["predict", str(tiny_checkpoint(d / "model.pt")), "-i", str(path), "-o", str(d / "out")]


@case("batch predict", "`predict` on a complex-valued image")
def predict_complex(d: Path) -> list[str]:
    import nibabel as nib
    import numpy as np

    x = np.ones((16, 16, 16), dtype=np.complex64)
    nib.save(nib.Nifti1Image(x, np.eye(4)), str(d / "complex.nii.gz"))
    return ["predict", str(tiny_checkpoint(d / "model.pt")), "-i", str(d / "complex.nii.gz"), "-o", str(d / "out")]


@case("batch predict", "`predict -o` naming an existing file")
def predict_output_is_file(d: Path) -> list[str]:
    (d / "taken.txt").write_text("not a folder")
    return _predict(d, tiny_checkpoint(d / "model.pt"))[:-1] + [str(d / "taken.txt")]


@case("batch predict", "`predict -o` under a file")
def predict_output_under_file(d: Path) -> list[str]:
    (d / "taken.txt").write_text("not a folder")
    return _predict(d, tiny_checkpoint(d / "model.pt"))[:-1] + [str(d / "taken.txt" / "out")]


@case("command line", "misspelt stage")
def cli_bad_stage(d: Path) -> list[str]:
    return ["serach", str(d / "config.yaml")]
