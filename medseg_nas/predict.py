"""`medseg-nas predict MODEL --input FILE_OR_DIR --output DIR`: NIfTI in → NIfTI label map out.

MODEL is a checkpoint (`best/model.pt`), a TorchScript export of ours (`best/model.ts`) or a run
directory (its `best/model.pt`). Each input is preprocessed exactly as in training (the saved
DataPlan: orientation, spacing, normalisation — see medseg_nas.inference), segmented with a
sliding window (optionally averaged over the 8 mirrorings with --tta), mapped back to the input
grid, and written as `<name>_seg.nii.gz` (uint8) with the input's exact affine and shape.
Existing outputs are never overwritten without --force.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from medseg_nas.errors import DataError, MedsegError

NIFTI_SUFFIXES = (".nii.gz", ".nii")


def _stem(path: Path) -> str:
    name = path.name
    for suf in NIFTI_SUFFIXES:
        if name.endswith(suf):
            return name[: -len(suf)]
    return path.stem


def find_inputs(inp: str | Path) -> list[Path]:
    inp = Path(inp)
    if inp.is_file():
        if not inp.name.endswith(NIFTI_SUFFIXES):
            raise DataError(f"{inp} is not a NIfTI file (.nii or .nii.gz)")
        return [inp]
    if inp.is_dir():
        files = sorted(p for p in inp.iterdir() if p.name.endswith(NIFTI_SUFFIXES) and not p.name.startswith("._"))
        if not files:
            raise DataError(f"{inp} contains no .nii / .nii.gz files")
        return files
    raise DataError(f"input {inp} does not exist")


def output_path(inp: Path, out_dir: Path) -> Path:
    return out_dir / f"{_stem(inp)}_seg.nii.gz"


def predict_files(
    model_path: str | Path,
    inputs: list[Path],
    out_dir: str | Path,
    tta: bool = False,
    device: str = "auto",
    force: bool = False,
    log=print,
) -> list[Path]:
    from medseg_nas.inference import Predictor, save_label_nifti
    from medseg_nas.model_io import load_model

    out_dir = Path(out_dir)
    targets = [output_path(p, out_dir) for p in inputs]
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        raise MedsegError(
            f"{len(existing)} output file(s) already exist (e.g. {existing[0]}); use --force to overwrite"
        )
    if len(set(targets)) != len(targets):
        raise DataError("two inputs map to the same output name; give them distinct file names")
    model = load_model(model_path, "cpu")
    predictor = Predictor(model, device=device, tta=tta)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for k, (src, dst) in enumerate(zip(inputs, targets), 1):
        t = time.time()
        labels, ref = predictor(src)
        save_label_nifti(labels, ref, dst)
        written.append(dst)
        counts = {int(c): int((labels == c).sum()) for c in range(1, model.n_classes)}
        log(f"[{k}/{len(inputs)}] {src.name} → {dst}  shape={labels.shape}  voxels/class={counts}  {time.time() - t:.1f}s")
    return written


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="best/model.pt, an exported model.ts, or a run directory")
    p.add_argument("--input", "-i", required=True, help="a NIfTI file or a folder of them")
    p.add_argument("--output", "-o", required=True, help="folder for the <name>_seg.nii.gz label maps")
    p.add_argument("--tta", action="store_true", default=None, help="average over the 8 mirrorings (slower)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")


def main(args: argparse.Namespace) -> int:
    inputs = find_inputs(args.input)
    tta = bool(args.tta)
    predict_files(args.model, inputs, args.output, tta=tta, device=args.device, force=args.force,
                  log=lambda m: print(m, file=sys.stdout, flush=True))
    return 0
