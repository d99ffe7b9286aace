"""`medseg-nas prepare <source>`: raw download (or the embedded generators) → MSD layout.

    medseg-nas prepare msd           --src Task04_Hippocampus --dst data/Task04_Hippocampus
    medseg-nas prepare acdc          --src ACDC/training      --dst data/ACDC_msd
    medseg-nas prepare promise12     --src PROMISE12/train    --dst data/PROMISE12_msd
    medseg-nas prepare mni152-tissue --dst data/mni152_tissue --cases 24 --seed 0
    medseg-nas prepare synthetic     --dst data/phantoms      --cases 8  --seed 0

Bad input raises `DataError` (printed by `medseg_nas.cli` as one line, exit 1).
"""

from __future__ import annotations

import argparse
import time

from data_prep import CONVERTERS, GENERATOR_CASES, GENERATORS, prepare
from data_prep.common import STAMP_KEY
from medseg_nas.volume_checks import NONFINITE_POLICIES

_HELP = {
    "msd": "validate an MSD task as downloaded (ignores macOS ._* files) and write a clean copy",
    "acdc": "ACDC training/testing folder (patientXXX/Info.cfg, _frameNN[_gt]) → ED/ES cases",
    "promise12": "PROMISE12 CaseXX.mhd/.raw (+ _segmentation) → NIfTI; unlabelled cases → imagesTs",
    "mni152-tissue": "the embedded default: deformed MNI152 T1 with grey/white-matter labels (no download)",
    "synthetic": "tiny geometric phantoms (three touching structures, anisotropic) for tests",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="source", metavar="SOURCE")
    sub.required = True
    for name in (*CONVERTERS, *GENERATORS):
        p = sub.add_parser(name, help=_HELP[name], description=_HELP[name])
        if name in CONVERTERS:
            p.add_argument("--src", required=True, help="the folder as downloaded")
        p.add_argument("--dst", required=True, help="output MSD-layout folder (must be empty unless --force)")
        if name in GENERATORS:
            p.add_argument("--cases", type=int, default=GENERATOR_CASES[name], help="number of cases (default %(default)s)")
            p.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
        else:
            p.add_argument("--cases", type=int, default=0, help="keep only the first N cases/patients (0 = all)")
            p.add_argument("--nonfinite", choices=NONFINITE_POLICIES, default="refuse",
                           help="NaN / Inf image voxels: refuse the dataset naming the file (default), or replace "
                                "them by 0 (zero) or by the volume's smallest finite value (min)")
        p.add_argument("--force", action="store_true", help="replace a non-empty --dst (only once the new data is complete)")


def main(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    meta = prepare(args.source, args.dst, src=getattr(args, "src", None), cases=args.cases,
                   seed=getattr(args, "seed", 0), force=args.force, nonfinite=getattr(args, "nonfinite", "refuse"))
    repaired = (meta.get(STAMP_KEY) or {}).get("nonfinite_repaired")
    if repaired:
        print(f"replaced {repaired:,} non-finite image voxel(s) ({args.nonfinite})")
    print(f"prepared {args.source}: {meta['numTraining']} training case(s), {meta.get('numTest', 0)} test case(s), "
          f"labels {meta['labels']} → {args.dst} ({time.perf_counter() - t0:.1f} s)")
    return 0
