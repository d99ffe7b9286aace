"""The one typed configuration of a run, loaded from YAML and resolved once.

Every tunable lives here (ARCHITECTURE: "everything the user can tune lives in the YAML
config; the CLI only overrides it"). Unknown keys are rejected by name with a suggestion, so a
typo never silently falls back to a default. The resolved config is saved in the run directory.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from data_prep import CONVERTERS, GENERATORS
from medseg_nas.errors import ConfigError
from medseg_nas.yaml_io import _quote, add_overrides_argument, apply_overrides, read_yaml_file  # noqa: F401 - re-exported
from medseg_nas.postprocess import POSTPROCESS_MODES
from medseg_nas.results import COSTS
from medseg_nas.search import STRATEGIES
from medseg_nas.space.genome import N_C_CHOICES, N_F_CHOICES, OPS
from medseg_nas.space.network import CELLS

EXPORT_FORMATS = ("torchscript", "onnx", "bundle")  # what `medseg-nas export` can write
RETRAIN_PICKS = ("knee", "best", "smallest")  # retrain.pick: one of these or a trial id


@dataclass
class PrepareConfig:
    """How `data.root` is produced when it does not exist yet ("" = it must already exist)."""

    source: str = ""  # "", or one of data_prep's CONVERTERS / GENERATORS
    src: str = ""  # raw download folder (msd / acdc / promise12)
    cases: int = 0  # generated datasets only
    seed: int = 0
    nonfinite: str = "refuse"  # NaN / Inf image voxels: "refuse", or replace by "zero" / "min" (converters only)


@dataclass
class DataConfig:
    root: str = ""  # MSD-layout folder: imagesTr/, labelsTr/, dataset.json
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    split_seed: int = 0
    n_folds: int = 0  # >1: k-fold cross-validation over the non-test cases
    fold: int = 0
    target_spacing: list[float] | None = None  # None: the fingerprint's median spacing
    patch_size: list[int] | None = None  # None: planned from the fingerprint
    max_patch_voxels: int = 96 * 96 * 64  # upper bound for the planned patch
    pos_fraction: float = 0.67  # share of patches centred on foreground
    augment: str = "full"  # "none" | "light" (flips + intensity) | "full" (+ affine)
    cache_rate: float = 1.0
    num_workers: int = 0


@dataclass
class SpaceConfig:
    """Restricts the EMONAS choices; defaults are the full published space."""

    n_c: list[int] = field(default_factory=lambda: [2, 3, 4])
    n_f: list[int] = field(default_factory=lambda: [3, 4, 5])  # 2 (four filters) is allowed: ours, not published
    ops: list[str] = field(default_factory=lambda: list(OPS))
    lr_min: float = 1e-5
    lr_max: float = 9e-3
    lr_grid: int = 10  # number of log-spaced learning rates the search moves on
    # "emonas": the authors' cell and macro structure (EMONASArch.py: pre-activation ops, sum of
    # all nodes, max-pool down, added skips); "residual": this project's variant (space/network.py);
    # "residual_light": residual with a plain two-conv full-resolution level (cheaper CPU steps)
    cell: str = "residual"


@dataclass
class TrainConfig:
    epochs: int = 50  # E, the per-trial epoch budget
    iters_per_epoch: int = 50
    batch_size: int = 2
    val_every: int = 1
    patience: int = 10  # epochs without validation improvement before stopping
    weight_decay: float = 3e-5
    grad_clip: float = 12.0
    amp: bool = True  # CUDA only; CPU always trains in fp32
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    seed: int = 0
    sw_batch_size: int = 2
    sw_overlap: float = 0.25


@dataclass
class ObjectivesConfig:
    """f1 = alpha(C - MCDice_train) + (C - MCDice_val) + beta(E - e_max)/E (search/objectives.py)."""

    alpha: float = 0.25
    beta: float = 0.25  # the authors' main.py
    C: float = 1.0
    # which Dice enters f1: "last5" = mean of the last 5 epochs' train and validation Dice (the
    # authors' model_train_bp), "best" = train and validation Dice at e_max
    dice_at: str = "last5"
    # what f2 is the log of (results.COSTS): "params" (the paper's), "macs" (one patch's forward
    # pass) or "latency" (median CPU ms per median-shaped volume, measured by each trial's worker)
    cost: str = "params"
    latency_runs: int = 5  # timed runs per latency measurement (after one warm-up); median kept


@dataclass
class SaMEAConfig:
    """SaMEA's numbers; defaults are the authors' (EMONAS main.py and Search/SaMEA_Algorithm.py)."""

    # "paper": the authors' rules; "adaptive": θ = adaptive_theta, weight vectors over the whole
    # simplex, normalisation by the evaluated front, screen_candidates children per slot
    rules: str = "paper"
    N: int = 10  # subproblems = population size (pop_size)
    T: int = 3  # neighbourhood size (nei_size)
    G: int = 40  # generations incl. the initial population (max_gen): the mutation decay's horizon
    LGen: int = 10  # learning generations: every child is trained
    theta: float = 0.001  # PBI penalty (penalty)
    w1_min: float = 0.5  # weight vectors (w1, 1 - w1) with w1 from w1_min to 1 (generate_weight_vectors)
    phi0: float = 1.0  # mutation probability scale: min(20/n, 1) with n = 10 variables (mutation_prob)
    crossover_p: float = 0.5  # uniform crossover: chance of each variable coming from parent 1
    value_smoothing: float = 0.2  # + value_smoothing/K on the K value probabilities of a variable
    subproblem_smoothing: float = 0.2  # + subproblem_smoothing/N on the subproblem probabilities
    surrogate_trees: int = 100  # RandomForestRegressor n_estimators (SurrogateRandomForest.BuildRF)
    surrogate_min_samples_split: int = 5
    adaptive_theta: float = 5.0  # rules: adaptive only
    screen_candidates: int = 30  # rules: adaptive only: children screened per slot
@dataclass
class DMLSConfig:
    initial_archive_size: int = 7
    # "random" | "forest" | "linear" (LS-PON: ridge on one-hot variables → normalised Pareto rank);
    # "surrogate" is still accepted as the old name of "forest"
    neighbour_order: str = "random"
    surrogate_trees: int = 200  # forest order: trees of the random forest (DMLS's own, not SaMEA's)


@dataclass
class NSGA2Config:
    pop_size: int = 10


@dataclass
class FidelityConfig:
    """Successive halving of the trial budget (nas/halving.py); `kind: none` trains every trial
    to train.epochs, as every result before this option did."""

    kind: str = "none"  # "none" | "halving"
    eta: int = 3  # the best 1/eta of a rung's trials continue to the next rung
    # epochs (of train.iters_per_epoch steps) at which a trial is judged, increasing, the last one
    # = train.epochs; [] with halving: train.epochs / eta^k down to one epoch
    rungs: list[int] = field(default_factory=list)
    promote: str = "all"  # "all" (MO-ASHA as published) | "pickable": see nas/halving.py


FIDELITY_KINDS = ("none", "halving")
PROMOTE_POOLS = ("all", "pickable")


@dataclass
class SearchConfig:
    strategy: str = "samea"  # one of medseg_nas.search.STRATEGIES
    budget_trials: int = 50
    budget_hours: float = 0.0  # 0: no wall-clock limit
    seed: int = 0
    max_consecutive_failures: int = 3
    # every strategy starts from one initial design (search/initial_design.py); with this, the
    # smallest genome of the space (the trivial end of every front) is its first member, as the
    # DMLS thesis does for every method
    seed_smallest: bool = True
    samea: SaMEAConfig = field(default_factory=SaMEAConfig)
    dmls: DMLSConfig = field(default_factory=DMLSConfig)
    nsga2: NSGA2Config = field(default_factory=NSGA2Config)
    fidelity: FidelityConfig = field(default_factory=FidelityConfig)


@dataclass
class ExecutorConfig:
    kind: str = "local"  # "local" | "ray"
    address: str = ""  # ray: cluster address ("" starts a local instance)
    workers: int = 1  # ray: trials in flight at once
    gpus_per_trial: float = 1.0  # ray, when GPUs are present
    cpus_per_trial: float = 1.0  # ray, when no GPU is present


@dataclass
class RetrainConfig:
    pick: str = "knee"  # "knee" | "best" | "smallest" | "<trial id>"
    # knee/best/smallest choose among the trials with at most this many parameters (0: no cap);
    # a trial id is taken as asked
    max_params: int = 0
    max_macs: int = 0  # the same cap on MACs of one patch's forward pass (0: no cap)
    max_latency_ms: float = 0.0  # and on the trial's measured CPU ms per median volume (0: no cap)
    epochs: int = 100
    iters_per_epoch: int = 100
    patience: int = 30
    seconds: float = 0.0  # wall-clock budget (0: none; epochs become a cap): else time grows with the pick's cost
    include_val: bool = True  # train on train+val cases (test stays held out)
    # with include_val: this share of the validation cases (at least one) is NOT trained on and
    # is the monitor for the curve and the best-epoch choice; 0 trains on every validation case
    # and the curve is then measured on training data (the report says so)
    monitor_fraction: float = 0.25
    # augmentation of the retrain only ("" = data.augment, which the search's trials use): heavier
    # augmentation pays off over a long retrain but is not measured to rank short trials
    augment: str = ""

    @property
    def seconds_budget(self) -> float | None:  # as Trainer.fit(seconds=) takes it: None = no clock
        return float(self.seconds) or None


@dataclass
class ExportConfig:
    formats: list[str] = field(default_factory=lambda: list(EXPORT_FORMATS))


@dataclass
class PredictConfig:
    tta: bool = False  # mirror test-time augmentation
    # largest-connected-component post-processing: "auto" decides per class on the retrain's held-out
    # monitor cases (nnU-Net's rule, medseg_nas.postprocess); "none" never; "largest_component" always
    postprocess: str = "auto"


@dataclass
class Config:
    name: str = "run"
    run_root: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    objectives: ObjectivesConfig = field(default_factory=ObjectivesConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    retrain: RetrainConfig = field(default_factory=RetrainConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)


_CHOICES = {
    "data.prepare.source": {"", *CONVERTERS, *GENERATORS},
    "data.prepare.nonfinite": {"refuse", "zero", "min"},
    "data.augment": {"none", "light", "full"},
    "retrain.augment": {"", "none", "light", "full"},
    "search.strategy": set(STRATEGIES),
    "search.dmls.neighbour_order": {"random", "forest", "linear", "surrogate"},
    "search.samea.rules": {"paper", "adaptive"},
    "objectives.dice_at": {"last5", "best"},
    "objectives.cost": set(COSTS),
    "executor.kind": {"local", "ray"},
}


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp`, converting only lossless cases."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {_quote(value)}")
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {_quote(value)}")
        return [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {_quote(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {_quote(value)}")
    if tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None or not math.isfinite(number):
            raise ConfigError(f"{where}: expected a finite number, got {_quote(value)}")
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {_quote(value)}")
    raise ConfigError(f"{where}: unsupported type {tp!r}")


def _build(cls: type, data: Any, prefix: str, source: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"section '{prefix.rstrip('.') or 'top level'}' in {source} must be a mapping, got {_quote(data)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        where = f"{prefix}{key}"
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(names)}"
            raise ConfigError(f"unknown key '{where}' in {source}{hint}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, f"{where}.", source)
            continue
        coerced = _coerce(value, tp, f"key '{where}' in {source}")
        allowed = _CHOICES.get(where)
        if allowed is not None and coerced not in allowed:
            raise ConfigError(
                f"key '{where}' in {source}: {_quote(coerced)} is not one of {sorted(allowed)}"
            )
        kwargs[key] = coerced
    return cls(**kwargs)


def config_from_dict(data: dict, source: str = "<dict>", overrides: list[str] | None = None) -> Config:
    """Build a validated Config; `overrides` are "dotted.key=yaml-value" strings."""
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{source} must hold a mapping of sections (e.g. 'train:'), "
                          f"not a {type(data).__name__}")
    data = copy.deepcopy(data or {})  # overrides must not reach into the caller's nested sections
    apply_overrides(data, overrides or [])
    cfg = _build(Config, data, "", source)
    validate(cfg, source)
    return cfg


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    return config_from_dict(read_yaml_file(path), str(path), overrides)


def validate(cfg: Config, source: str) -> None:
    """Cross-field checks that types alone cannot express."""
    sp = cfg.space
    for key, allowed in (("n_c", N_C_CHOICES), ("n_f", N_F_CHOICES)):
        for n in getattr(sp, key):
            if n not in allowed:
                raise ConfigError(f"key 'space.{key}' in {source}: {n} is outside {{{', '.join(map(str, allowed))}}}")
    for op in sp.ops:
        if op not in OPS:
            close = difflib.get_close_matches(op, OPS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"key 'space.ops' in {source}: unknown op '{op}'{hint}")
    if sp.cell not in CELLS:
        close = difflib.get_close_matches(sp.cell, CELLS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; expected one of {', '.join(CELLS)}"
        raise ConfigError(f"key 'space.cell' in {source}: unknown cell '{sp.cell}'{hint}")
    if not (sp.n_c and sp.n_f and sp.ops):
        raise ConfigError(f"section 'space' in {source}: n_c, n_f and ops must be non-empty")
    if not (1e-5 <= sp.lr_min <= sp.lr_max <= 9e-3) or sp.lr_grid < 2:
        raise ConfigError(f"section 'space' in {source}: need 1e-5 <= lr_min <= lr_max <= 9e-3 and lr_grid >= 2")
    d = cfg.data
    if not (0 <= d.val_fraction < 1 and 0 <= d.test_fraction < 1 and d.val_fraction + d.test_fraction < 1):
        raise ConfigError(f"section 'data' in {source}: val_fraction + test_fraction must be < 1")
    for key in ("epochs", "iters_per_epoch", "batch_size", "val_every"):
        if getattr(cfg.train, key) < 1:
            raise ConfigError(f"key 'train.{key}' in {source} must be >= 1")
    if cfg.search.budget_trials < 1 and cfg.search.budget_hours <= 0:
        raise ConfigError(f"section 'search' in {source}: set budget_trials >= 1 or budget_hours > 0")
    _validate_fidelity(cfg, source)
    sa = cfg.search.samea
    if not (sa.N >= 2 and 2 <= sa.T <= sa.N and sa.G >= 2 and sa.LGen >= 0):
        raise ConfigError(f"section 'search.samea' in {source}: need N >= 2, 2 <= T <= N, G >= 2 and LGen >= 0")
    if not (sa.theta >= 0 and sa.adaptive_theta >= 0 and 0 <= sa.w1_min < 1 and 0 < sa.phi0 <= 1
            and 0 <= sa.crossover_p <= 1 and sa.value_smoothing > 0 and sa.subproblem_smoothing > 0):
        raise ConfigError(
            f"section 'search.samea' in {source}: need theta >= 0, 0 <= w1_min < 1, 0 < phi0 <= 1, "
            "0 <= crossover_p <= 1 and smoothings > 0"
        )
    if sa.surrogate_trees < 1 or sa.surrogate_min_samples_split < 2 or sa.screen_candidates < 1:
        raise ConfigError(
            f"section 'search.samea' in {source}: need surrogate_trees >= 1, surrogate_min_samples_split >= 2, "
            "screen_candidates >= 1"
        )
    for key in ("max_params", "max_macs", "max_latency_ms"):
        value = getattr(cfg.retrain, key)
        if not (value >= 0 and math.isfinite(value)):
            raise ConfigError(f"key 'retrain.{key}' in {source} must be >= 0 (0: no cap), got {_quote(value)}")
    if cfg.objectives.latency_runs < 1:
        raise ConfigError(f"key 'objectives.latency_runs' in {source} must be >= 1")
    if cfg.predict.postprocess not in POSTPROCESS_MODES:
        raise ConfigError(f"key 'predict.postprocess' in {source}: unknown mode {_quote(cfg.predict.postprocess)}; "
                          f"expected one of {', '.join(POSTPROCESS_MODES)}")
    for fmt in cfg.export.formats:
        if fmt not in EXPORT_FORMATS:
            raise ConfigError(f"key 'export.formats' in {source}: unknown format '{fmt}'")


def _validate_fidelity(cfg: Config, source: str) -> None:
    fid, E = cfg.search.fidelity, cfg.train.epochs
    for key, allowed in (("kind", FIDELITY_KINDS), ("promote", PROMOTE_POOLS)):
        if (value := getattr(fid, key)) not in allowed:
            close = difflib.get_close_matches(value, allowed, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; expected one of {', '.join(allowed)}"
            raise ConfigError(f"key 'search.fidelity.{key}' in {source}: unknown {key} '{value}'{hint}")
    if fid.kind == "none":
        return
    if fid.eta < 2:
        raise ConfigError(f"key 'search.fidelity.eta' in {source} must be >= 2, got {fid.eta}")
    r = fid.rungs
    if r and not (all(a < b for a, b in zip(r, r[1:])) and r[0] >= 1 and r[-1] == E):
        raise ConfigError(f"key 'search.fidelity.rungs' in {source}: {r} must be increasing epochs from >= 1 up to "
                          f"train.epochs ({E}); [] lets them be train.epochs / eta^k")
    if len(fidelity_rungs(fid, E)) < 2:
        raise ConfigError(f"section 'search.fidelity' in {source}: halving needs at least two rungs, but train.epochs "
                          f"= {E} with eta = {fid.eta} gives one; raise train.epochs or list the rungs")


def fidelity_rungs(fid: FidelityConfig, epochs: int) -> list[int]:
    """The rungs in epochs: the configured ones, or epochs / eta^k (rounded, >= 1, deduplicated)."""
    if fid.kind == "none":
        return [int(epochs)]
    if fid.rungs:
        return [int(e) for e in fid.rungs]
    rungs, e = [], float(epochs)
    while e >= 1:
        if not rungs or round(e) < rungs[0]:
            rungs.insert(0, int(round(e)))
        e /= fid.eta
    return rungs


def config_to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
