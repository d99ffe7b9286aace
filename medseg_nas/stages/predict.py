"""`medseg-nas predict MODEL --input FILE_OR_DIR --output DIR`: NIfTI in → NIfTI label map out.

MODEL is a checkpoint (`best/model.pt`), a TorchScript export of ours (`best/model.ts`) or a run
directory (its `best/model.pt`). Each input is preprocessed exactly as in training (the saved
DataPlan: orientation, spacing, normalisation — see medseg_nas.inference), segmented with a
sliding window (optionally averaged over the 8 mirrorings with --tta), mapped back to the input
grid, post-processed as the model's file says (the largest-component decision made after its
retrain, medseg_nas.postprocess; `--no-postprocess` writes the raw output), and written as
`<name>_seg.nii.gz` (uint8) with the input's exact affine and shape.

A folder is a batch that finishes: a file that cannot be segmented is reported and skipped, the
others are written (each atomically, so an interrupted run never leaves half a file), and the
exit code is 1 with a list of the failures at the end. Existing outputs are never overwritten
without --force; --skip-existing continues an interrupted batch, keeping every output that is
already a readable label map of its input. The output folder's own `*_seg.nii.gz` files are never
taken as inputs (output folder = input folder works).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from medseg_nas.errors import DataError, MedsegError
from medseg_nas.niftiio import NIFTI_SUFFIXES, save_label_nifti, strip_nifti_suffix

SEG_SUFFIX = "_seg.nii.gz"  # what predict writes: `<name>_seg.nii.gz`


def _same_dir(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def find_inputs(inp: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """The NIfTI files to segment: `inp` itself, or the volumes in folder `inp` — without hidden
    files (macOS `._*`, our partial writes) and, when `inp` is the output folder, without the
    `*_seg.nii.gz` label maps predict wrote there."""
    inp = Path(inp)
    if inp.is_file():
        if not inp.name.endswith(NIFTI_SUFFIXES):
            raise DataError(f"{inp} is not a NIfTI file (.nii or .nii.gz)")
        return [inp]
    if inp.is_dir():
        files = sorted(p for p in inp.iterdir() if p.name.endswith(NIFTI_SUFFIXES) and not p.name.startswith("."))
        ours = [p for p in files if out_dir is not None and p.name.endswith(SEG_SUFFIX) and _same_dir(inp, Path(out_dir))]
        files = [p for p in files if p not in ours]
        if not files:
            extra = f" besides {len(ours)} {SEG_SUFFIX} output(s) of predict" if ours else ""
            raise DataError(f"{inp} contains no .nii / .nii.gz files{extra}")
        return files
    raise DataError(f"input {inp} does not exist")


def output_path(inp: Path, out_dir: Path) -> Path:
    return out_dir / f"{strip_nifti_suffix(inp.name)}{SEG_SUFFIX}"


def is_complete_output(out: Path, inp: Path) -> bool:
    """True when `out` is a readable label map on `inp`'s grid (what --skip-existing keeps); a
    truncated or foreign file is predicted again."""
    import nibabel as nib
    import numpy as np

    try:
        seg = nib.load(str(out))
        data = np.asarray(seg.dataobj)  # reads the whole (small, uint8) file: catches truncation
        return data.shape == tuple(nib.load(str(inp)).shape[:3])
    except Exception:
        return False


@dataclass
class BatchResult:
    """What a batch did, input by input."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # outputs kept by --skip-existing
    failed: list[tuple[Path, MedsegError]] = field(default_factory=list)
    # per written file: wall-clock ms of segmenting it (read, preprocess, sliding window, invert;
    # the write not included): what a user of this machine pays per volume
    ms_per_volume: list[float] = field(default_factory=list)
    threads: int = 0  # torch intra-op threads it ran with
    device: str = ""

    def timing_line(self) -> str:
        if not self.ms_per_volume:
            return ""
        ms = sorted(self.ms_per_volume)
        return (f"{statistics.median(ms):.0f} ms per volume (median of {len(ms)}, {ms[0]:.0f}-{ms[-1]:.0f}; "
                f"{self.device}, {self.threads} threads)")

    def failure_lines(self) -> list[str]:
        """One line per failed input, naming the file."""
        lines = []
        for src, exc in self.failed:
            msg = str(exc)
            lines.append(msg if str(src) in msg else f"{src}: {msg}")
        return lines


def _plan(inputs: list[Path], out_dir: Path, force: bool, skip_existing: bool, log) -> tuple[list, list[Path]]:
    """(input, output) pairs to predict and the inputs whose outputs are kept; refuses the whole
    batch up front when outputs collide or would be overwritten without --force/--skip-existing."""
    targets = [output_path(p, out_dir) for p in inputs]
    by_target: dict[Path, Path] = {}
    for src, dst in zip(inputs, targets):
        if dst in by_target:
            raise DataError(f"{by_target[dst]} and {src} would both be written to {dst}; give them distinct file names")
        by_target[dst] = src
    existing = [(s, t) for s, t in zip(inputs, targets) if t.exists()]
    if existing and not (force or skip_existing):
        raise MedsegError(
            f"{len(existing)} output file(s) already exist (e.g. {existing[0][1]}); use --skip-existing to keep "
            "them and predict the rest, or --force to overwrite"
        )
    todo, kept = [], []
    for src, dst in zip(inputs, targets):
        if skip_existing and dst.exists():
            if is_complete_output(dst, src):
                kept.append(src)
                continue
            log(f"{dst} is unreadable or incomplete: predicting {src.name} again")
        todo.append((src, dst))
    return todo, kept


def check_output_dir(out_dir: Path) -> None:
    """Refuse, before any work, an --output that is not a folder we can write into: an existing
    file, a path under a file, or a place this user cannot create or write files in."""
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"--output {out_dir} exists and is not a folder; give a folder for the label maps")
    for parent in out_dir.parents:
        if parent.exists():
            if not parent.is_dir():
                raise DataError(f"--output {out_dir} cannot be created: {parent} is a file, not a folder")
            break
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".medseg-write-check-"):
            pass
    except OSError as exc:
        raise DataError(f"--output {out_dir} is not a writable folder ({exc.strerror or type(exc).__name__})") from None


def _write_atomically(labels, ref, dst: Path) -> None:
    """Write next to `dst` under a hidden name, then rename: no half-written `_seg` file ever."""
    tmp = dst.with_name(f".{strip_nifti_suffix(dst.name)}.partial-{os.getpid()}.nii.gz")
    try:
        save_label_nifti(labels, ref, tmp)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def predict_batch(
    model_path: str | Path,
    inputs: list[Path],
    out_dir: str | Path,
    tta: bool = False,
    device: str = "auto",
    force: bool = False,
    skip_existing: bool = False,
    postprocess: bool = True,
    log=print,
) -> BatchResult:
    """Segment every input; a failing input is recorded in the result and the batch goes on.
    Problems shared by all inputs (the model, the output names) are raised before any work.
    `postprocess`: apply the model's largest-component decision (medseg_nas.postprocess), as
    `evaluate` scored it."""
    import torch

    from medseg_nas.inference import Predictor, describe_error
    from medseg_nas.model_io import load_model
    from medseg_nas.postprocess import apply_postprocess, postprocess_classes

    out_dir = Path(out_dir)
    check_output_dir(out_dir)
    todo, kept = _plan(inputs, out_dir, force, skip_existing, log)
    result = BatchResult(skipped=kept)
    if kept:
        log(f"keeping {len(kept)} existing output(s) in {out_dir} (--skip-existing)")
    if not todo:
        return result
    model = load_model(model_path, "cpu")
    predictor = Predictor(model, device=device, tta=tta)
    reduce = postprocess_classes(model.extra) if postprocess else []
    if reduce:
        log("post-processing: keeping the largest connected component of "
            + ", ".join(model.labels.get(c, str(c)) for c in reduce) + " (the model's decision; --no-postprocess: raw)")
    result.device, result.threads = str(predictor.device), torch.get_num_threads()
    out_dir.mkdir(parents=True, exist_ok=True)
    for k, (src, dst) in enumerate(todo, 1):
        t = time.time()
        try:
            labels, ref = predictor(src)
            labels = apply_postprocess(labels, reduce)
            ms = (time.time() - t) * 1000.0
            _write_atomically(labels, ref, dst)
        except MedsegError as exc:
            result.failed.append((src, exc))
        except Exception as exc:  # anything else this file triggers: report its root cause, go on
            result.failed.append((src, DataError(f"cannot segment {src}: {describe_error(exc)}")))
        else:
            result.written.append(dst)
            result.ms_per_volume.append(ms)
            counts = {int(c): int((labels == c).sum()) for c in range(1, model.n_classes)}
            log(f"[{k}/{len(todo)}] {src.name} → {dst}  shape={labels.shape}  voxels/class={counts}  "
                f"{ms:.0f} ms")
            continue
        log(f"[{k}/{len(todo)}] {src.name} FAILED: {result.failure_lines()[-1]}")
    return result


def predict_files(model_path: str | Path, inputs: list[Path], out_dir: str | Path, **batch_options) -> list[Path]:
    """`predict_batch` (same options) for callers that want an exception: the written files, or the
    input's own error when one input failed (a summary error when several did — after all others
    were written)."""
    result = predict_batch(model_path, inputs, out_dir, **batch_options)
    if len(result.failed) == 1:
        raise result.failed[0][1]
    if result.failed:
        raise DataError(f"{len(result.failed)} of {len(inputs)} input(s) failed: " + "; ".join(result.failure_lines()))
    return result.written


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="best/model.pt, an exported model.ts, or a run directory")
    p.add_argument("--input", "-i", required=True, help="a NIfTI file or a folder of them")
    p.add_argument("--output", "-o", required=True, help="folder for the <name>_seg.nii.gz label maps")
    p.add_argument("--tta", action="store_true", default=None, help="average over the 8 mirrorings (slower)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--no-postprocess", dest="postprocess", action="store_false",
                   help="write the network's raw output, without the model's largest-component post-processing")
    existing = p.add_mutually_exclusive_group()
    existing.add_argument("--force", action="store_true", help="overwrite existing outputs")
    existing.add_argument("--skip-existing", action="store_true",
                          help="keep outputs that already exist and are readable; predict the rest "
                               "(continues an interrupted batch)")


def main(args: argparse.Namespace) -> int:
    check_output_dir(Path(args.output))
    inputs = find_inputs(args.input, args.output)
    result = predict_batch(args.model, inputs, args.output, tta=bool(args.tta), device=args.device,
                           force=args.force, skip_existing=args.skip_existing, postprocess=args.postprocess,
                           log=lambda m: print(m, file=sys.stdout, flush=True))
    print(f"predict: {len(result.written)} written, {len(result.skipped)} kept, {len(result.failed)} failed "
          f"of {len(inputs)} input(s) → {args.output}"
          + (f"; {result.timing_line()}" if result.ms_per_volume else ""), flush=True)
    if not result.failed:
        return 0
    lines = result.failure_lines()
    if len(lines) == 1:
        print(f"error: {lines[0]}", file=sys.stderr)
    else:
        print(f"error: {len(lines)} of {len(inputs)} input(s) failed:", file=sys.stderr)
        for line in lines:
            print(f"  {line}", file=sys.stderr)
    return 1
