"""`medseg-nas <stage>`: one subcommand per pipeline stage, no business logic here.

Each stage lives in its own module exposing `add_arguments(parser)` and `main(args) -> int`;
this file only wires them and turns a `MedsegError` into one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from medseg_nas.errors import MedsegError

# subcommand -> (module implementing it, one-line help)
STAGES: dict[str, tuple[str, str]] = {
    "prepare": ("medseg_nas.stages.prepare", "convert a raw dataset download (MSD, ACDC, PROMISE12) or build the embedded default into MSD layout"),
    "search": ("medseg_nas.stages.search", "run the architecture search (SaMEA, DMLS, random, NSGA-II) into a run directory"),
    "retrain": ("medseg_nas.stages.retrain", "retrain the chosen network of a run with the full budget"),
    "evaluate": ("medseg_nas.stages.evaluate", "Dice / HD95 per class of the retrained network on the held-out test split"),
    "export": ("medseg_nas.stages.export", "export the retrained network as TorchScript, ONNX and a MONAI bundle"),
    "predict": ("medseg_nas.stages.predict", "segment NIfTI volumes with an exported or retrained model"),
    "report": ("medseg_nas.stages.report", "write report.html for a run directory"),
    "run": ("medseg_nas.stages.pipeline", "the whole job: prepare, search, retrain, evaluate, export, report"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medseg-nas", description="Neural architecture search for 3D medical image segmentation.")
    sub = parser.add_subparsers(dest="stage", metavar="STAGE")
    sub.required = True
    for name, (module, help_text) in STAGES.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    module, _ = STAGES[args.stage]
    try:
        return int(importlib.import_module(module).main(args) or 0)
    except MedsegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
