"""`data.root` ready to read before anything reads it: built from `data.prepare` when missing.

`run` and `search` both start here, so a config that names a dataset still to be prepared
behaves the same whichever command starts the job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from medseg_nas.errors import ConfigError, DataError


def ensure_dataset(data_cfg, log: Callable[[str], None] = print, verify_stamp: bool = True) -> bool:
    """Prepare `data.root` from `data.prepare` when it is missing (True: it was prepared).

    With `verify_stamp` (the `run` pipeline) an existing folder stamped by `medseg-nas prepare` is
    checked against `data.prepare`: reused when prepared with the same settings, else one
    DataError (a changed `cases`/`seed` must not silently search the old dataset). Without it
    (`search` alone, benchmarks that point data.root at another dataset) an existing folder is
    used as it is.
    """
    if not data_cfg.root:
        raise ConfigError("data.root is empty in the config: set it to an MSD-layout folder")
    root = Path(data_cfg.root)
    source = data_cfg.prepare.source
    if root.exists():
        from data_prep.common import read_stamp

        if verify_stamp and source and read_stamp(root) is not None:
            from data_prep import prepare_from_config

            prepare_from_config(data_cfg.prepare, root)
        return False
    if not source:
        raise DataError(f"data.root {root} does not exist and data.prepare.source is empty: "
                        "prepare the dataset first (`medseg-nas prepare ...`)")
    from data_prep import prepare_from_config

    log(f"prepare: {source} → {root}")
    prepare_from_config(data_cfg.prepare, root)
    return True
