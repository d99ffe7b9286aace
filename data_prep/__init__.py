"""Converters from each dataset's original download layout to MSD layout (one file per dataset).

Entry points:
- `prepare(source, dst, src=None, cases=0, seed=0, force=False, nonfinite="refuse") -> dict` — run one converter
  ("msd", "acdc", "promise12") or generator ("mni152-tissue", "synthetic"); returns the written
  `dataset.json` content.
- `prepare_from_config(prepare_cfg, dst, force=False) -> Path` — what the pipeline calls when
  `data.prepare.source` is set: builds `dst` from a `PrepareConfig`, or reuses it when `dst`
  already holds a dataset prepared with the same settings (stamp in `dataset.json`).

All output is written to a temporary folder next to `dst` and moved into place at the end; a
non-empty `dst` is refused without `force`. Bad input raises `medseg_nas.errors.DataError`.
"""

from __future__ import annotations

from pathlib import Path

from medseg_nas.errors import DataError

CONVERTERS = ("msd", "acdc", "promise12")
GENERATOR_CASES = {"mni152-tissue": 24, "synthetic": 8}  # each generator's case count when none is given
GENERATORS = tuple(GENERATOR_CASES)


def prepare(source: str, dst: str | Path, src: str | Path | None = None, cases: int = 0, seed: int = 0,
            force: bool = False, nonfinite: str = "refuse") -> dict:
    if source in CONVERTERS:
        if not src:
            raise DataError(f"prepare {source} needs a source folder (--src / data.prepare.src)")
        if source == "msd":
            from data_prep import msd as mod
        elif source == "acdc":
            from data_prep import acdc as mod
        else:
            from data_prep import promise12 as mod
        return mod.convert(src, dst, force=force, cases=cases, nonfinite=nonfinite)
    if source == "mni152-tissue":
        from data_prep import mni152

        return mni152.generate(dst, cases=cases or GENERATOR_CASES[source], seed=seed, force=force)
    if source == "synthetic":
        from data_prep import synthetic

        return synthetic.generate(dst, cases=cases or GENERATOR_CASES[source], seed=seed, force=force)
    raise DataError(f"unknown prepare source '{source}'; choose one of {', '.join(CONVERTERS + GENERATORS)}")


def _wanted_stamp(prepare_cfg) -> dict:
    source = prepare_cfg.source
    if source in GENERATORS:
        return {"source": source, "cases": int(prepare_cfg.cases or GENERATOR_CASES[source]), "seed": int(prepare_cfg.seed)}
    stamp = {"source": source, "src": str(Path(prepare_cfg.src)), "cases": int(prepare_cfg.cases or 0)}
    if prepare_cfg.nonfinite != "refuse":
        stamp["nonfinite"] = prepare_cfg.nonfinite
    return stamp


def prepare_from_config(prepare_cfg, dst: str | Path, force: bool = False) -> Path:
    """Make sure `dst` holds the dataset described by `prepare_cfg` (a `PrepareConfig`).

    - `dst` holds a dataset.json stamped with the same source/src/cases/seed: reused as is.
    - `dst` missing or empty: prepared.
    - `dst` holds something else: `DataError` unless `force` (then rebuilt, replaced at the end).
    """
    from data_prep.common import read_stamp

    dst = Path(dst)
    if not prepare_cfg.source:
        raise DataError(f"data.prepare.source is empty: nothing to prepare into {dst}")
    want = _wanted_stamp(prepare_cfg)
    have = read_stamp(dst) if dst.is_dir() else None
    if have is not None and not force:
        have = {k: have.get(k) for k in want}
        if "src" in want and have.get("src") is not None:
            same_src = Path(have["src"]).resolve() == Path(want["src"]).resolve()
            have["src"] = want["src"] if same_src else have["src"]
        if have == want:
            return dst
        raise DataError(
            f"{dst} already holds a dataset prepared with {have}, but the config asks for {want}; "
            "delete it, point data.root elsewhere, or prepare with --force"
        )
    prepare(prepare_cfg.source, dst, src=prepare_cfg.src or None, cases=prepare_cfg.cases,
            seed=prepare_cfg.seed, force=force, nonfinite=prepare_cfg.nonfinite)
    return dst
