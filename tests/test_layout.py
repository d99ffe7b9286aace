"""The layering docs/ARCHITECTURE.md promises, checked from the source (no imports run): no import
cycle between the package's modules and folders, no script importing another, the benchmark
harness used by scripts only, and no package file over the 450-line limit."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "medseg_nas"
MAX_LINES = 450


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every absolute module a file imports, at any depth (function-level imports count)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def _unit(module: str) -> str:
    """medseg_nas.nas.runner -> medseg_nas.nas; medseg_nas.rundir -> medseg_nas.rundir."""
    return ".".join(module.split(".")[:2])


def _package_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PKG.rglob("*.py")}
    units = {_unit(m) for m in modules}
    graph: dict[str, set[str]] = {u: set() for u in units}
    for name, path in modules.items():
        for target in _imports(path):
            if target.startswith("medseg_nas.") and _unit(target) in units and _unit(target) != _unit(name):
                graph[_unit(name)].add(_unit(target))
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one member (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_package_folders_and_modules():
    assert _cycles(_package_graph()) == []


def test_no_script_imports_another_script():
    scripts = {p.stem for p in (ROOT / "scripts").glob("*.py")}
    offenders = {p.name: sorted(_imports(p) & scripts) for p in (ROOT / "scripts").glob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_product_never_imports_the_benchmark_harness():
    users = [str(p.relative_to(ROOT)) for p in PKG.rglob("*.py")
             if not p.is_relative_to(PKG / "bench") and any(m.startswith("medseg_nas.bench") for m in _imports(p))]
    assert users == []


def test_no_package_file_over_the_line_limit():
    long = {str(p.relative_to(ROOT)): n for p in PKG.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}
