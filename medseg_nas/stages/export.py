"""`medseg-nas export RUN_DIR`: the retrained network as TorchScript, ONNX and a MONAI bundle.

- TorchScript (`best/model.ts`): `torch.jit.trace` on a patch-sized input. The network walks
  ModuleLists in Python loops, which tracing unrolls into a static graph (scripting would need
  annotations everywhere). Convolutions, InstanceNorm and cat are size-agnostic, so the traced
  graph runs on any spatial size that is a multiple of the plan's divisor. Our metadata (genome,
  plans, labels) rides along as the `medseg_nas.json` extra file, so `predict` accepts a .ts.
- ONNX (`best/model.onnx`): the TorchScript-based exporter (opset 17) with dynamic batch and
  spatial axes, then checked with onnxruntime against PyTorch logits on a real preprocessed
  case (centre patch) and on a second, differently shaped input.
- MONAI bundle (`best/bundle/`): `configs/metadata.json`, `configs/inference.json`,
  `models/model.ts`. inference.json uses only MONAI transforms (the same preprocessing list
  `predict` uses, see medseg_nas.inference) + sliding window + Invertd + SaveImaged, so

      python -m monai.bundle run --config_file best/bundle/configs/inference.json \
          --bundle_root best/bundle --dataset_dir IN_DIR_OR_FILE --output_dir OUT_DIR

  segments NIfTI files without medseg-nas installed (`python -m monai.bundle` needs `fire`).
  A bundle is code (MONAI's parser evaluates its `$` expressions): only values that passed
  medseg_nas.plan_schema go into it.

The measured differences are written to `best/export.json`.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from medseg_nas.config import EXPORT_FORMATS
from medseg_nas.errors import MedsegError
from medseg_nas.inference import inference_compose, preprocess_spec
from medseg_nas.model_io import TS_META, LoadedModel, load_model
from medseg_nas.plan_schema import validate_metadata
from medseg_nas.rundir import RunDir

ONNX_OPSET = 17
ATOL = 1e-3  # max abs logit difference accepted between PyTorch and TorchScript / ONNX


def example_input(model: LoadedModel, batch: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(batch, model.in_channels, *model.data_plan.patch_size, generator=g)


def case_input(model: LoadedModel, image_path: str | Path) -> torch.Tensor:
    """A patch-sized crop (zero-padded if needed) from the centre of a real preprocessed case."""
    d = inference_compose(model.data_plan)({"image": str(image_path)})
    img = torch.as_tensor(d["image"]).float()
    patch = model.data_plan.patch_size
    out = torch.zeros(model.in_channels, *patch)
    src, dst = [], []
    for size, p in zip(img.shape[1:], patch):
        if size >= p:
            start = (size - p) // 2
            src.append(slice(start, start + p))
            dst.append(slice(0, p))
        else:
            off = (p - size) // 2
            src.append(slice(0, size))
            dst.append(slice(off, off + size))
    out[(slice(None), *dst)] = img[(slice(None), *src)]
    return out[None]


def other_shape_input(model: LoadedModel) -> torch.Tensor:
    """A batch of 2 with a different spatial size (still a multiple of the plan divisor)."""
    n_c = model.genome.n_c if model.genome is not None else 4
    div = model.network_plan.divisor(n_c)
    patch = model.data_plan.patch_size
    shape = [max(d, p - d) if p > d else p + d for p, d in zip(patch, div)]
    return torch.randn(2, model.in_channels, *shape, generator=torch.Generator().manual_seed(1))


@torch.no_grad()
def _logits(net, x: torch.Tensor) -> np.ndarray:
    return torch.as_tensor(net(x)).float().cpu().numpy()


def export_torchscript(model: LoadedModel, path: str | Path, example: torch.Tensor | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = model.network.cpu().eval()
    x = example if example is not None else example_input(model)
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks of InstanceNorm: constant here
        traced = torch.jit.trace(net, x, check_trace=False)
    torch.jit.save(traced, str(path), _extra_files={TS_META: json.dumps(model.metadata())})
    return path


def export_onnx(model: LoadedModel, path: str | Path, example: torch.Tensor | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = model.network.cpu().eval()
    x = example if example is not None else example_input(model)
    axes = {0: "batch", 2: "x", 3: "y", 4: "z"}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (x,), str(path), input_names=["image"], output_names=["logits"],
            dynamic_axes={"image": axes, "logits": axes}, opset_version=ONNX_OPSET, dynamo=False,
        )
    import onnx

    m = onnx.load(str(path))
    onnx.checker.check_model(m)
    meta = m.metadata_props.add()
    meta.key, meta.value = "medseg_nas", json.dumps(model.metadata())
    onnx.save(m, str(path))
    return path


def compare_torchscript(path: str | Path, model: LoadedModel, inputs: list[torch.Tensor]) -> float:
    ts = torch.jit.load(str(path), map_location="cpu").eval()
    net = model.network.cpu().eval()
    return max(float(np.abs(_logits(ts, x) - _logits(net, x)).max()) for x in inputs)


def compare_onnx(path: str | Path, model: LoadedModel, inputs: list[torch.Tensor]) -> float:
    try:
        import onnxruntime as ort
    except ImportError:
        raise MedsegError("onnxruntime is not installed: pip install 'medseg-nas[export]'") from None
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    net = model.network.cpu().eval()
    diffs = []
    for x in inputs:
        out = sess.run(None, {"image": x.numpy()})[0]
        diffs.append(float(np.abs(out - _logits(net, x)).max()))
    return max(diffs)


# --- MONAI bundle -------------------------------------------------------------------------------


class OnnxNetwork(torch.nn.Module):
    """An onnxruntime session called like the network (tensor in, tensor out), so the exported
    file is timed through the same sliding window as the PyTorch model."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # the same threads as the PyTorch timings
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {"image": x.contiguous().numpy()})[0])


def volume_latency(network, model: LoadedModel, runs: int = 5, predictor_layout: bool = True) -> dict | None:
    """CPU ms per volume of the dataset's median shape (deployment_cost.measure_latency), or None
    when the model file does not say the median shape."""
    from medseg_nas.deployment_cost import measure_latency

    shape = list(model.data_plan.median_shape or [])
    if not shape:
        return None
    ms, threads = measure_latency(network, model.in_channels, shape, model.data_plan.patch_size, runs=runs,
                                  predictor_layout=predictor_layout)
    return {"ms_per_volume": round(ms, 1), "threads": threads, "volume_shape": shape, "runs": runs}


def bundle_inference_config(model: LoadedModel, sw_batch_size: int = 2, overlap: float = 0.25) -> dict:
    """inference.json: MONAI-only preprocessing, sliding window, Invertd and SaveImaged."""
    # no_grad around the loop only: a global torch.set_grad_enabled(False) in "initialize" would
    # outlive an in-process `monai.bundle.run(...)` and break every later backward pass
    run_expr = (
        "$torch.no_grad()(lambda: [@postprocessing({**d, 'pred': @inferer(d['image'][None].to(@device), @network)[0].cpu()})"
        " for d in @dataset])()"
    )
    return {
        "imports": ["$import glob", "$import os", "$import numpy", "$import torch"],
        "bundle_root": ".",
        "dataset_dir": "input",
        "output_dir": "$@bundle_root + '/eval'",
        "output_postfix": "seg",
        "device": "$torch.device('cuda' if torch.cuda.is_available() else 'cpu')",
        "network_def": "$torch.jit.load(os.path.join(@bundle_root, 'models', 'model.ts'), map_location=@device)",
        "network": "$@network_def.eval()",
        "datalist": (
            "$[@dataset_dir] if os.path.isfile(@dataset_dir) else "
            "sorted(glob.glob(os.path.join(@dataset_dir, '*.nii.gz')) + glob.glob(os.path.join(@dataset_dir, '*.nii')))"
        ),
        "preprocessing": {"_target_": "Compose", "transforms": preprocess_spec(model.data_plan)},
        "dataset": {
            "_target_": "Dataset",
            "data": "$[{'image': f} for f in @datalist]",
            "transform": "@preprocessing",
        },
        "inferer": {
            "_target_": "SlidingWindowInferer",
            "roi_size": list(model.data_plan.patch_size),
            "sw_batch_size": sw_batch_size,
            "overlap": overlap,
            "mode": "gaussian",
        },
        "postprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "Activationsd", "keys": "pred", "softmax": True},
                {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing", "orig_keys": "image",
                 "nearest_interp": False, "to_tensor": True},
                {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
                *bundle_postprocess(model),
                {"_target_": "SaveImaged", "keys": "pred", "output_dir": "@output_dir",
                 "output_postfix": "@output_postfix", "output_dtype": "$numpy.uint8", "resample": False,
                 "separate_folder": False, "print_log": True},
            ],
        },
        "initialize": ["$os.makedirs(@output_dir, exist_ok=True)"],
        "run": [run_expr],
        "finalize": [],
    }


def bundle_postprocess(model: LoadedModel) -> list[dict]:
    """The model's largest-component decision as MONAI's KeepLargestConnectedComponentd (full
    connectivity, each class on its own: medseg_nas.postprocess's rule), or nothing without one.
    MONAI's transform needs scikit-image at bundle run time; bundle_metadata names it then."""
    from medseg_nas.postprocess import postprocess_classes

    classes = postprocess_classes(model.extra)
    if not classes:
        return []
    return [{"_target_": "KeepLargestConnectedComponentd", "keys": "pred", "applied_labels": classes,
             "is_onehot": False, "independent": True, "connectivity": 3}]


def bundle_metadata(model: LoadedModel) -> dict:
    import monai

    labels = {str(k): v for k, v in sorted(model.labels.items())}
    patch = list(model.data_plan.patch_size)
    modality = model.data_plan.to_dict()["modality"]  # written as the saved plan spells it
    return {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20220324.json",
        "version": "0.1.0",
        "changelog": {"0.1.0": "exported by medseg-nas"},
        "monai_version": monai.__version__,
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": np.__version__,
        "required_packages_version": {"nibabel": _version("nibabel"),
                                      **({"scikit-image": _version("scikit-image") or "any"} if bundle_postprocess(model) else {})},
        "name": "medseg-nas EMONAS-Net segmentation",
        "task": "3D segmentation",
        "description": (
            "Network found by medseg-nas (EMONAS-Net space): "
            + (model.genome.describe() if model.genome is not None else "")
            + ". Run configs/inference.json with --dataset_dir pointing at a NIfTI file or folder."
        ),
        "authors": "medseg-nas",
        "copyright": "see the training data's licence",
        "medseg_nas": model.metadata(),
        "network_data_format": {
            "inputs": {
                "image": {
                    "type": "image",
                    "format": "magnitude",
                    "modality": str(modality),
                    "num_channels": model.in_channels,
                    "spatial_shape": patch,
                    "dtype": "float32",
                    "value_range": [],
                    "is_patch_data": True,
                    "channel_def": {str(i): str(modality) for i in range(model.in_channels)},
                }
            },
            "outputs": {
                "pred": {
                    "type": "image",
                    "format": "segmentation",
                    "num_channels": model.n_classes,
                    "spatial_shape": patch,
                    "dtype": "float32",
                    "value_range": [],
                    "is_patch_data": True,
                    "channel_def": labels,
                }
            },
        },
    }


def _version(pkg: str) -> str:
    try:
        from importlib.metadata import version

        return version(pkg)
    except Exception:
        return ""


def export_bundle(model: LoadedModel, bundle_dir: str | Path, ts_path: str | Path | None = None) -> Path:
    """The bundle is code that MONAI's parser runs: it is written from schema-checked values only."""
    import shutil

    validate_metadata(model.metadata(), model.path or "the model")
    bundle_dir = Path(bundle_dir)
    (bundle_dir / "configs").mkdir(parents=True, exist_ok=True)
    (bundle_dir / "models").mkdir(parents=True, exist_ok=True)
    target = bundle_dir / "models" / "model.ts"
    if ts_path is not None and Path(ts_path).is_file():
        shutil.copyfile(ts_path, target)
    else:
        export_torchscript(model, target)
    (bundle_dir / "configs" / "inference.json").write_text(json.dumps(bundle_inference_config(model), indent=2))
    (bundle_dir / "configs" / "metadata.json").write_text(json.dumps(bundle_metadata(model), indent=2))
    (bundle_dir / "README.md").write_text(
        "# medseg-nas MONAI bundle\n\n"
        "```\npython -m monai.bundle run --config_file configs/inference.json --bundle_root . "
        "--dataset_dir /path/to/nifti_or_folder --output_dir /path/to/out\n```\n\n"
        "Needs monai, torch, nibabel (and `fire` for `python -m monai.bundle`).\n"
    )
    return bundle_dir


# --- stage --------------------------------------------------------------------------------------


def first_test_image(run: RunDir) -> Path | None:
    """The first test case's image of a run (for checking exports on real data), if any."""
    try:
        cases = run.cases("test") or run.cases("val")
    except Exception:
        return None
    for c in cases:
        if Path(c["image"]).is_file():
            return Path(c["image"])
    return None


def export_all(
    model_path: str | Path,
    out_dir: str | Path,
    formats=EXPORT_FORMATS,
    case_image: str | Path | None = None,
    log=print,
) -> dict:
    """Export `model_path` into `out_dir` (model.ts, model.onnx, bundle/); returns the check report."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = load_model(model_path, "cpu")
    inputs = [case_input(model, case_image) if case_image else example_input(model), other_shape_input(model)]
    report: dict = {
        "model": str(model_path),
        "case": str(case_image) if case_image else None,
        "check_shapes": [list(x.shape) for x in inputs],
        "atol": ATOL,
        "torch": torch.__version__,
        "host": platform.node(),
    }
    ts_path = out_dir / "model.ts"
    if "torchscript" in formats or "bundle" in formats:
        t = time.time()
        export_torchscript(model, ts_path, inputs[0])
        diff = compare_torchscript(ts_path, model, inputs)
        report["torchscript"] = {"path": str(ts_path), "max_abs_diff": diff, "seconds": round(time.time() - t, 2)}
        log(f"torchscript → {ts_path}  max |Δlogit| = {diff:.2e}")
        if diff > ATOL:
            raise MedsegError(f"TorchScript export differs from PyTorch by {diff:.3g} (> {ATOL})")
        report["torchscript"]["latency"] = lat = volume_latency(torch.jit.load(str(ts_path), map_location="cpu"), model)
        if lat:
            log(f"torchscript   {lat['ms_per_volume']:.0f} ms per {lat['volume_shape']} volume (CPU, {lat['threads']} threads)")
    if "onnx" in formats:
        t = time.time()
        onnx_path = export_onnx(model, out_dir / "model.onnx", inputs[0])
        diff = compare_onnx(onnx_path, model, inputs)
        report["onnx"] = {"path": str(onnx_path), "opset": ONNX_OPSET, "max_abs_diff": diff,
                          "seconds": round(time.time() - t, 2)}
        log(f"onnx        → {onnx_path}  max |Δlogit| (onnxruntime) = {diff:.2e}")
        if diff > ATOL:
            raise MedsegError(f"ONNX export differs from PyTorch by {diff:.3g} (> {ATOL})")
        report["onnx"]["latency"] = lat = volume_latency(OnnxNetwork(onnx_path), model, predictor_layout=False)
        if lat:
            log(f"onnx          {lat['ms_per_volume']:.0f} ms per {lat['volume_shape']} volume (onnxruntime CPU, "
                f"{lat['threads']} threads)")
    if "bundle" in formats:
        bdir = export_bundle(model, out_dir / "bundle", ts_path)
        report["bundle"] = {"path": str(bdir)}
        log(f"bundle      → {bdir}")
    if "torchscript" not in formats and ts_path.exists():
        ts_path.unlink()
        report.pop("torchscript", None)
    (out_dir / "export.json").write_text(json.dumps(report, indent=2))
    return report


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="run directory (reads best/model.pt, writes best/model.ts, model.onnx, bundle/)")
    p.add_argument("--format", nargs="+", choices=EXPORT_FORMATS, default=None,
                   help="formats to write (default: the config's export.formats)")
    p.add_argument("--model", default=None, help="checkpoint to export instead of RUN_DIR/best/model.pt")
    p.add_argument("--case", default=None, help="NIfTI image used to check the exports (default: first test case)")


def main(args: argparse.Namespace) -> int:
    run = RunDir(args.run_dir)
    formats = args.format
    if formats is None:
        formats = run.config().export.formats if run.config_yaml.is_file() else EXPORT_FORMATS
    from medseg_nas.preflight import check_export_packages

    for warning in check_export_packages(formats):
        print(f"warning: {warning}", file=sys.stderr)
    model_path = Path(args.model) if args.model else run.model_pt
    if not model_path.is_file():
        raise MedsegError(f"{model_path} does not exist; run `medseg-nas retrain {run.path}` first")
    case = args.case or first_test_image(run)
    export_all(model_path, run.best, formats, case)
    return 0
