"""Reading YAML that a user (or a stranger's run directory) wrote: size, alias expansion and
nesting bounded before any Python object is built, every problem one ConfigError naming the file.
config.py builds the typed Config from what this returns; `--set KEY=VALUE` overrides are YAML
values too and are parsed here.
"""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any

import yaml

from medseg_nas.errors import ConfigError

MAX_CONFIG_BYTES = 1_000_000  # a config is a page of YAML; anything bigger is not one
MAX_YAML_VALUES = 100_000  # values once aliases are expanded: a config holds hundreds
MAX_YAML_DEPTH = 32  # nested collections per file
_QUOTE = reprlib.Repr()
_QUOTE.maxlevel, _QUOTE.maxlist, _QUOTE.maxdict, _QUOTE.maxstring, _QUOTE.maxother = 2, 4, 4, 60, 60


def _quote(value: Any, limit: int = 120) -> str:
    """repr of a config value for an error message, bounded in depth and length (a hostile file
    must not turn one error line into gigabytes)."""
    text = _QUOTE.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with limits checked on the composed node graph, before any Python
    object is built: a file whose aliases would expand it beyond MAX_YAML_VALUES values (a
    "billion laughs" bomb) or nest deeper than MAX_YAML_DEPTH is refused, never expanded."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.YAMLError(f"collections nested more than {MAX_YAML_DEPTH} deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self):
        node = super().compose_document()
        if node is not None and _expanded_size(node) > MAX_YAML_VALUES:
            raise yaml.YAMLError(f"its aliases (*name) expand it to more than {MAX_YAML_VALUES:,} values; "
                                 "refusing to build it")
        return node


def _expanded_size(root) -> int:
    """How many values `root` holds once every alias is expanded (shared nodes counted each time
    they are referenced, each distinct node computed once)."""
    sizes: dict[int, int] = {}

    def size(node) -> int:
        key = id(node)
        if key not in sizes:
            sizes[key] = 1  # a node that refers back to itself counts once
            if isinstance(node, yaml.SequenceNode):
                sizes[key] = 1 + sum(size(n) for n in node.value)
            elif isinstance(node, yaml.MappingNode):
                sizes[key] = 1 + sum(size(k) + size(v) for k, v in node.value)
        return sizes[key]

    return size(root)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one line: the problem and where (1-based line, column)."""
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def read_yaml_file(path: str | Path) -> Any:
    """The YAML content of `path` (a user's config or a run directory's saved config.yaml), read
    one way everywhere: size, aliases and nesting bounded, every problem one ConfigError naming
    the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {path} is {size:,} bytes; a config is at most {MAX_CONFIG_BYTES:,}")
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
                          f"{exc.start}): save it as UTF-8") from None
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 — a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {_yaml_problem(exc)}") from None
    except RecursionError:
        raise ConfigError(f"config file {path} is not valid YAML: nested too deeply") from None


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    if not all(parts):
        raise ConfigError(f"override '{dotted}=...': the key must be dotted names, e.g. train.epochs")
    node = data
    for part in parts[:-1]:
        if node.get(part) is None:  # absent, or an empty section in the YAML
            node[part] = {}
        node = node[part]
        if not isinstance(node, dict):
            raise ConfigError(f"override '{dotted}': '{part}' is not a section")
    node[parts[-1]] = value


def apply_overrides(data: dict, overrides: list[str]) -> None:
    """Set each "dotted.key=yaml-value" of `overrides` in the config mapping `data`, in place."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key=value (e.g. train.epochs=5)")
        key, raw = item.split("=", 1)
        try:
            value = yaml.load(raw, Loader=_BoundedLoader)  # noqa: S506 — a SafeLoader subclass
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {_quote(item)}: the value {_quote(raw)} is not valid YAML ({_yaml_problem(exc)})") from None
        _set_dotted(data, key.strip(), value)


def add_overrides_argument(parser, example: str) -> None:
    """The `--set KEY=VALUE` option of every stage that loads a config (`args.overrides`, for
    `load_config(path, overrides)`); `example` is shown in the help."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a config entry, e.g. --set {example} (repeatable)")


def flatten_keys(d: dict, prefix: str = "") -> dict:
    """{"retrain.epochs": 90, ...} from nested sections: two configs compared key by key, and the
    differences named as the user writes them in `--set`."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten_keys(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
