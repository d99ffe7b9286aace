"""A strict schema for the metadata a model file carries (checkpoint dict, TorchScript extra file).

Why: a model file may come from anyone, and its strings travel far — into MONAI transforms, into
the exported bundle's inference.json (which MONAI's ConfigParser runs: `$` evaluates Python,
`@` references, `%` loads other files) and metadata.json. `torch.load(weights_only=True)` only
stops pickled code; a `"$__import__('os')…"` axcodes string would still run. So everything
loaded is checked here, field by field, before anything uses it: numbers are finite and in
range, axcodes is an orientation, names (labels, modality) are plain words, and no unknown field
passes. A bad file gets one `ModelFileError` naming the file and the field.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from medseg_nas.errors import ModelFileError

# a label / modality name: starts with a letter or digit; letters, digits, space and _ . , + - / ( )
# only, so nothing a MONAI config could read as an expression ($), reference (@), macro (%) or id (#, ::)
SAFE_NAME = re.compile(r"^[^\W_][\w .,+\-/()]{0,63}$")
AXIS_PAIRS = ("LR", "PA", "IS")
NORM_KEYS = {"zscore": {"scheme"}, "ct": {"scheme", "clip", "mean", "std"}}
DATA_PLAN_FIELDS = {
    "target_spacing", "spacing", "patch_size", "roi_size", "network_plan", "in_channels", "n_classes",
    "labels", "modality", "normalization", "axcodes", "median_shape", "version",
}
MAX_SPACING_MM = 1000.0
MAX_PATCH = 4096
MAX_CHANNELS = 64
MAX_CLASSES = 1000
MAX_STRIDE = 8


class _Bad(Exception):
    """A field and what is wrong with it; turned into one ModelFileError by validate_*."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")


def _show(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 80 else s[:77] + "..."


def _int(v: Any, field: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise _Bad(field, f"must be an integer in [{lo}, {hi}], got {_show(v)}")
    return v


def _number(v: Any, field: str, positive: bool = False, hi: float = math.inf) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or (positive and v <= 0) or v > hi:
        need = "a finite positive number" if positive else "a finite number"
        raise _Bad(field, f"must be {need}{'' if hi == math.inf else f' <= {hi:g}'}, got {_show(v)}")
    return v


def _triple(v: Any, field: str, item) -> list:
    if not isinstance(v, list) or len(v) != 3:
        raise _Bad(field, f"must be a list of 3 values, got {_show(v)}")
    return [item(x, f"{field}[{i}]") for i, x in enumerate(v)]


def _name(v: Any, field: str) -> str:
    if not isinstance(v, str) or not SAFE_NAME.match(v):
        raise _Bad(field, f"must be a plain name (letters, digits, space, _ . , + - / ( ); at most 64), got {_show(v)}")
    return v


def _index_key(k: Any, field: str, hi: int) -> None:
    if isinstance(k, bool) or not (isinstance(k, int) or (isinstance(k, str) and k.isdigit() and k.isascii())):
        raise _Bad(field, f"keys must be non-negative integers, got {_show(k)}")
    _int(int(k), field, 0, hi)


def _names_by_index(v: Any, field: str, hi: int) -> dict:
    if not isinstance(v, dict):
        raise _Bad(field, f"must map integers to names, got {_show(v)}")
    for k, name in v.items():
        _index_key(k, field, hi)
        _name(name, f"{field}[{k!r}]")
    return v


def _axcodes(v: Any, field: str) -> str:
    """Three letters, one from each of L/R, P/A, I/S (in any order): RAS, LPI, ASR, ..."""
    ok = isinstance(v, str) and len(v) == 3 and sorted(
        next((i for i, pair in enumerate(AXIS_PAIRS) if c in pair), -1) for c in v
    ) == [0, 1, 2]
    if not ok:
        raise _Bad(field, f"must be 3 orientation letters, one of L/R, P/A, I/S each (e.g. 'RAS'), got {_show(v)}")
    return v


def _normalization(v: Any, field: str) -> Any:
    items = [v] if isinstance(v, dict) else v
    if not isinstance(items, list) or len(items) > MAX_CHANNELS:
        raise _Bad(field, f"must be a list of per-channel dicts, got {_show(v)}")
    for i, n in enumerate(items):
        f = f"{field}[{i}]"
        if not isinstance(n, dict) or n.get("scheme") not in NORM_KEYS:
            raise _Bad(f, f"must be {{'scheme': 'zscore'}} or {{'scheme': 'ct', 'clip', 'mean', 'std'}}, got {_show(n)}")
        extra = set(n) - NORM_KEYS[n["scheme"]]
        if extra:
            raise _Bad(f, f"unknown key(s) {sorted(map(str, extra))} for scheme {n['scheme']!r}")
        if n["scheme"] == "ct":
            if set(n) != NORM_KEYS["ct"]:
                raise _Bad(f, f"scheme 'ct' needs clip, mean and std, got {_show(n)}")
            clip = n["clip"]
            if not isinstance(clip, list) or len(clip) != 2:
                raise _Bad(f"{f}.clip", f"must be [low, high], got {_show(clip)}")
            lo, hi = (_number(c, f"{f}.clip") for c in clip)
            if lo > hi:
                raise _Bad(f"{f}.clip", f"low > high: {_show(clip)}")
            _number(n["mean"], f"{f}.mean")
            _number(n["std"], f"{f}.std", positive=True)
    return v


def _modality(v: Any, field: str) -> Any:
    if isinstance(v, str):
        return _name(v, field)
    if isinstance(v, list):
        if len(v) > MAX_CHANNELS:
            raise _Bad(field, f"more than {MAX_CHANNELS} channels")
        return [_name(m, f"{field}[{i}]") for i, m in enumerate(v)]
    return _names_by_index(v, field, MAX_CHANNELS - 1)


def _network_plan(v: Any, field: str) -> dict:
    """{"strides": [[sx, sy, sz], ...]}; other keys (future plan options) only as plain scalars."""
    from medseg_nas.space import NetworkPlan

    if not isinstance(v, dict) or not isinstance(v.get("strides"), list) or not 1 <= len(v["strides"]) <= 16:
        raise _Bad(field, f"must be {{'strides': [[x, y, z], ...]}}, got {_show(v)}")
    for i, s in enumerate(v["strides"]):
        _triple(s, f"{field}.strides[{i}]", lambda x, f: _int(x, f, 1, MAX_STRIDE))
    for k, x in v.items():
        if k == "strides":
            continue
        _name(k, f"{field} key")
        if isinstance(x, str):
            _name(x, f"{field}.{k}")
        elif x is not None and not isinstance(x, (bool, int)):
            _number(x, f"{field}.{k}")
    try:
        NetworkPlan.from_dict(v)
    except (ValueError, TypeError, KeyError) as exc:
        raise _Bad(field, str(exc)) from None
    return v


def _shape(v: Any, field: str) -> list:
    if not isinstance(v, list) or len(v) > 3:
        raise _Bad(field, f"must be a list of at most 3 sizes, got {_show(v)}")
    return [_int(x, f"{field}[{i}]", 0, 10**6) for i, x in enumerate(v)]


def _check_data_plan(dp: Any, field: str = "data_plan") -> dict:
    if not isinstance(dp, dict):
        raise _Bad(field, f"must be a dict, got {type(dp).__name__}")
    unknown = sorted(str(k) for k in dp if k not in DATA_PLAN_FIELDS)
    if unknown:
        raise _Bad(f"{field}.{unknown[0]}", "unknown field")
    if dp.get("patch_size") is None and dp.get("roi_size") is None:
        raise _Bad(f"{field}.patch_size", "missing (needed for sliding-window inference)")
    checks = {
        "target_spacing": lambda v, f: _triple(v, f, lambda x, g: _number(x, g, positive=True, hi=MAX_SPACING_MM)),
        "spacing": lambda v, f: _triple(v, f, lambda x, g: _number(x, g, positive=True, hi=MAX_SPACING_MM)),
        "patch_size": lambda v, f: _triple(v, f, lambda x, g: _int(x, g, 1, MAX_PATCH)),
        "roi_size": lambda v, f: _triple(v, f, lambda x, g: _int(x, g, 1, MAX_PATCH)),
        "network_plan": _network_plan,
        "in_channels": lambda v, f: _int(v, f, 1, MAX_CHANNELS),
        "n_classes": lambda v, f: _int(v, f, 1, MAX_CLASSES),
        "labels": lambda v, f: _names_by_index(v, f, MAX_CLASSES - 1),
        "modality": _modality,
        "normalization": _normalization,
        "axcodes": _axcodes,
        "median_shape": _shape,
        "version": lambda v, f: _int(v, f, 0, 10**6),
    }
    for key, value in dp.items():
        if value is not None:  # absent and null fields take the documented defaults
            checks[key](value, f"{field}.{key}")
    return dp


def validate_data_plan(dp: Any, source: str | Path, field: str = "data_plan") -> dict:
    """`dp` itself when it passes the schema; else one ModelFileError naming `source` and the field."""
    try:
        return _check_data_plan(dp, field)
    except _Bad as exc:
        raise ModelFileError(f"{source}: refusing model metadata, {exc}") from None


def _postprocess(v: Any, field: str, hi: int) -> None:
    """A post-processing decision names foreground classes of this model, and nothing else is read."""
    if v is None:
        return
    if not isinstance(v, dict) or not isinstance(v.get("largest_component", []), list):
        raise _Bad(field, f"must be a decision with a list 'largest_component', got {_show(v)}")
    for c in v.get("largest_component", []):
        _int(c, f"{field}.largest_component", 1, max(hi, 1))


def validate_metadata(meta: Any, source: str | Path) -> dict:
    """The fields a checkpoint or TorchScript extra file shares (genome, sizes, plans, labels)."""
    from medseg_nas.space import Genome

    try:
        if not isinstance(meta, dict):
            raise _Bad("metadata", f"must be a dict, got {type(meta).__name__}")
        _check_data_plan(meta.get("data_plan"), "data_plan")
        _int(meta.get("in_channels"), "in_channels", 1, MAX_CHANNELS)
        _int(meta.get("n_classes"), "n_classes", 1, MAX_CLASSES)
        if meta.get("genome") is not None:
            try:
                Genome.from_dict(meta["genome"])
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise _Bad("genome", f"not a valid genome ({exc})") from None
        if meta.get("network_plan"):
            _network_plan(meta["network_plan"], "network_plan")
        if meta.get("labels"):
            _names_by_index(meta["labels"], "labels", MAX_CLASSES - 1)
        for field, decision in (("postprocess", meta.get("postprocess")),
                                ("extra.postprocess", meta["extra"].get("postprocess") if isinstance(meta.get("extra"), dict) else None)):
            _postprocess(decision, field, int(meta["n_classes"]) - 1)
    except _Bad as exc:
        raise ModelFileError(f"{source}: refusing model metadata, {exc}") from None
    return meta
