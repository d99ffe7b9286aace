"""Pre-flight: everything a stage will need, checked before it spends any compute.

`medseg-nas run` used to find a bad `retrain.pick`, a missing CUDA or a missing ONNX package only
after hours of search and retrain. The config loader checks types and names; this module checks
what the types cannot say — sizes and ranges per stage, whether `train.device` exists on this
machine, whether the packages of the configured export formats (and executor) are installed —
and raises one `ConfigError` naming the key and a valid value. Nothing here trains, reads the
dataset or touches a run directory.

Patch sizes: the network halves an axis at a level only while the axis length is even (and at
least 8), so an odd length part-way down (30 → 15) silently drops the remaining downsampling
levels of that axis. A user-given `data.patch_size` must therefore be a multiple of 2^h, h being
the number of halvings its length allows; it is refused with the nearest valid sizes rather than
rounded, because rounding would silently change the memory and the receptive field the user
asked for.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Iterable

from medseg_nas.config import RETRAIN_PICKS, Config
from medseg_nas.errors import ConfigError
from medseg_nas.space.plan import MAX_LEVELS

STAGES = ("search", "retrain", "evaluate", "export")  # what `run` runs after prepare
MIN_PATCH = 4  # data.plan.make_plan's smallest axis
MIN_POOL_SIZE = 4  # space.plan.plan_from_spacing's min_size: an axis is halved while length // 2 >= this
# modules each export format needs beyond the base install (all in the `export` extra)
EXPORT_PACKAGES: dict[str, tuple[str, ...]] = {"torchscript": (), "onnx": ("onnx", "onnxruntime"), "bundle": ()}
EXTRA_HINT = "pip install 'medseg-nas[export]'"


def _importable(module: str) -> bool:
    """Installed, without importing it (a None entry in sys.modules means "blocked")."""
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _key(name: str, src: str) -> str:
    return f"key '{name}' in {src}" if src else f"key '{name}'"


def _at_least(name: str, value: float, low: float, src: str) -> None:
    if value < low:
        raise ConfigError(f"{_key(name, src)} is {value!r}: it must be >= {low!r}")


# --- config values per stage -------------------------------------------------------------------


def pool_halvings(length: int) -> int:
    """How many times the network may halve an axis of `length` voxels (parity aside)."""
    h = 0
    while h < MAX_LEVELS and length // 2 >= MIN_POOL_SIZE:
        length //= 2
        h += 1
    return h


def patch_axis_ok(length: int) -> bool:
    """True when no halving of the axis is blocked by an odd intermediate length."""
    return length >= MIN_PATCH and length % (2 ** pool_halvings(length)) == 0


def nearest_patch_sizes(length: int) -> list[int]:
    """The closest valid axis lengths below and above `length`."""
    below = next((n for n in range(length - 1, MIN_PATCH - 1, -1) if patch_axis_ok(n)), None)
    above = next(n for n in range(max(length + 1, MIN_PATCH), 2 * length + 2 * MIN_PATCH) if patch_axis_ok(n))
    return [n for n in (below, above) if n is not None]


def check_patch_size(patch: list[int] | None, src: str = "") -> None:
    if patch is None:
        return  # planned from the dataset fingerprint: always a valid size
    if len(patch) != 3 or min(patch) < MIN_PATCH:
        raise ConfigError(f"{_key('data.patch_size', src)} is {patch}: it must be 3 integers >= {MIN_PATCH} (X, Y, Z)")
    for axis, length in enumerate(patch):
        if not patch_axis_ok(length):
            sizes = " or ".join(str(n) for n in nearest_patch_sizes(length))
            raise ConfigError(
                f"{_key('data.patch_size', src)} is {patch}: axis {axis} ({length}) is not a multiple of "
                f"{2 ** pool_halvings(length)}, so the network would silently lose downsampling levels "
                f"(an odd length cannot be halved); use {sizes}"
            )


def check_data(cfg: Config, src: str = "") -> None:
    d = cfg.data
    if d.n_folds < 0 or d.n_folds == 1:
        raise ConfigError(f"{_key('data.n_folds', src)} is {d.n_folds}: use 0 (one train/val split) or >= 2 (k-fold)")
    if d.n_folds >= 2 and not 0 <= d.fold < d.n_folds:
        raise ConfigError(f"{_key('data.fold', src)} is {d.fold}: with data.n_folds = {d.n_folds} "
                          f"it must be in 0..{d.n_folds - 1}")
    if d.n_folds == 0 and d.fold != 0:
        raise ConfigError(f"{_key('data.fold', src)} is {d.fold} but data.n_folds is 0 (no k-fold): "
                          f"set data.n_folds > {d.fold} or data.fold to 0")
    if d.target_spacing is not None and (len(d.target_spacing) != 3 or min(d.target_spacing) <= 0):
        raise ConfigError(f"{_key('data.target_spacing', src)} is {d.target_spacing}: it must be 3 positive numbers (mm)")
    check_patch_size(d.patch_size, src)
    _at_least("data.max_patch_voxels", d.max_patch_voxels, MIN_PATCH ** 3, src)
    for name in ("pos_fraction", "cache_rate"):
        value = getattr(d, name)
        if not 0 <= value <= 1:
            raise ConfigError(f"{_key('data.' + name, src)} is {value!r}: it must be in [0, 1]")
    _at_least("data.num_workers", d.num_workers, 0, src)


MAX_STEPS = 10_000_000  # epochs x iters_per_epoch: beyond this a budget is a typo (years of CPU, weeks of GPU)


def check_steps(section: str, epochs: int, iters: int, src: str = "") -> None:
    if epochs * iters > MAX_STEPS:
        where = f"section '{section}' in {src}" if src else f"section '{section}'"
        raise ConfigError(f"{where} asks for {epochs:,} x {iters:,} = {epochs * iters:,} training steps per "
                          f"network, more than {MAX_STEPS:,} (years on a CPU, weeks on a GPU): check epochs and iters_per_epoch")


def check_train(cfg: Config, src: str = "") -> None:
    t = cfg.train
    check_steps("train", t.epochs, t.iters_per_epoch, src)
    _at_least("train.patience", t.patience, 0, src)
    _at_least("train.sw_batch_size", t.sw_batch_size, 1, src)
    if not 0 <= t.sw_overlap < 1:
        raise ConfigError(f"{_key('train.sw_overlap', src)} is {t.sw_overlap!r}: it must be in [0, 1)")


def check_search(cfg: Config, src: str = "") -> None:
    s = cfg.search
    _at_least("search.budget_trials", s.budget_trials, 0, src)
    _at_least("search.budget_hours", s.budget_hours, 0, src)
    _at_least("search.max_consecutive_failures", s.max_consecutive_failures, 1, src)
    if s.strategy == "samea":
        sa = s.samea
        _at_least("search.samea.surrogate_trees", sa.surrogate_trees, 1, src)
        _at_least("search.samea.N", sa.N, 2, src)
        if not 2 <= sa.T <= sa.N:
            raise ConfigError(f"{_key('search.samea.T', src)} is {sa.T}: it must be in 2..search.samea.N ({sa.N})")
    if s.strategy == "dmls" and s.dmls.neighbour_order in ("surrogate", "forest"):
        _at_least("search.dmls.surrogate_trees", s.dmls.surrogate_trees, 1, src)
    if s.strategy == "dmls":
        _at_least("search.dmls.initial_archive_size", s.dmls.initial_archive_size, 1, src)
    elif s.strategy == "nsga2":
        _at_least("search.nsga2.pop_size", s.nsga2.pop_size, 2, src)
    ex = cfg.executor
    _at_least("executor.workers", ex.workers, 1, src)
    _at_least("executor.gpus_per_trial", ex.gpus_per_trial, 0, src)
    if ex.cpus_per_trial <= 0:
        raise ConfigError(f"{_key('executor.cpus_per_trial', src)} is {ex.cpus_per_trial!r}: it must be > 0")


def check_pick(pick: str, where: str = "--pick") -> None:
    """knee | best | smallest | a trial id (whether that trial exists is known after the search)."""
    if pick in RETRAIN_PICKS or (pick.isdigit() and pick.isascii()):
        return
    import difflib

    close = difflib.get_close_matches(pick, RETRAIN_PICKS, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise ConfigError(f"{where} is {pick!r}: use knee, best, smallest or a trial id{hint}")


def check_retrain(cfg: Config, src: str = "", pick: str | None = None) -> None:
    r = cfg.retrain
    check_pick(pick, "--pick") if pick is not None else check_pick(r.pick, _key("retrain.pick", src))
    _at_least("retrain.epochs", r.epochs, 1, src)
    _at_least("retrain.iters_per_epoch", r.iters_per_epoch, 1, src)
    check_steps("retrain", r.epochs, r.iters_per_epoch, src)
    _at_least("retrain.patience", r.patience, 0, src)
    _at_least("retrain.seconds", r.seconds, 0, src)


# --- this machine ------------------------------------------------------------------------------


def check_device(device: str, where: str = "key 'train.device'") -> None:
    """`device` must name a device this machine has: auto, cpu, cuda or cuda:N (N < GPUs)."""
    if device in ("", "auto", "cpu"):
        return
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(f"{where} is {device!r}, not a device: use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cpu":
        return
    if dev.type != "cuda":
        raise ConfigError(f"{where} is {device!r}: medseg-nas trains on auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise ConfigError(f"{where} is {device!r} but CUDA is not available on this machine: use auto or cpu")
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        raise ConfigError(f"{where} is {device!r} but this machine has {count} CUDA device(s): "
                          f"use cuda:0..cuda:{count - 1}")


def check_export_packages(formats: Iterable[str]) -> list[str]:
    """Refuse formats whose packages are missing; warnings for what only later use needs."""
    formats = list(formats)
    for fmt in formats:
        missing = [m for m in EXPORT_PACKAGES.get(fmt, ()) if not _importable(m)]
        if missing:
            raise ConfigError(f"export format '{fmt}' needs {' and '.join(missing)}, not installed: "
                              f"{EXTRA_HINT} (or drop '{fmt}' from export.formats)")
    warnings = []
    if "bundle" in formats and not _importable("fire"):
        warnings.append(f"running the exported bundle (`python -m monai.bundle run`) needs fire: {EXTRA_HINT}")
    return warnings


def check_executor_packages(cfg: Config, src: str = "") -> None:
    if cfg.executor.kind == "ray" and not _importable("ray"):
        raise ConfigError(f"{_key('executor.kind', src)} is 'ray' but ray is not installed: pip install 'medseg-nas[ray]'")


# --- entry point -------------------------------------------------------------------------------


def preflight(cfg: Config, stages: Iterable[str] = STAGES, source: str = "", *, device: str | None = None,
              pick: str | None = None) -> list[str]:
    """Check what `stages` will need; raises ConfigError on the first problem, returns warnings.

    `source` names the config in messages; `device` / `pick` are command-line overrides of
    `train.device` / `retrain.pick` (retrain's --device / --pick)."""
    stages = set(stages)
    unknown = stages - set(STAGES)
    if unknown:
        raise ValueError(f"unknown stages {sorted(unknown)}")
    warnings: list[str] = []
    if stages & {"search", "retrain"}:
        check_data(cfg, source)
        check_train(cfg, source)
        if device:
            check_device(device, "--device")
        else:
            check_device(cfg.train.device, _key("train.device", source))
    if "search" in stages:
        check_search(cfg, source)
        check_executor_packages(cfg, source)
    if "retrain" in stages:
        check_retrain(cfg, source, pick)
    if "export" in stages:
        warnings += check_export_packages(cfg.export.formats)
    return warnings
