"""The map of docs/architecture.md kept true: packages import only the layers below them (or their own), and no
module imports itself back through others, not even from inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: bottom to top; packages of one layer may use each other (without cycles)
LAYERS = [
    {"roost", "roost.errors", "roost.paths", "roost.system", "roost._forkserver", "roost.aws"},
    {"roost.formats"},
    {"roost.data"},
    {"roost.models"},
    {"roost.algorithm"},
    {"roost.storage"},
    {"roost.training", "roost.tuning", "roost.serving", "roost.cloudwatch", "roost.identity"},
    {"roost.api", "roost.web"},
    {"roost.server"},
    {"roost.cli", "roost.__main__"},
]


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "roost").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        found[name] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):  # function-level imports count too
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("roost"):
            candidates = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        out |= {c for c in candidates if c in modules}
    return out


def _layer(module: str) -> int:
    best = -1
    for rank, layer in enumerate(LAYERS):
        for package in layer:
            if module == package or module.startswith(package + "."):
                best = rank if package != "roost" else max(best, rank)
                if package != "roost":
                    return rank
    return best


def test_each_package_imports_only_layers_below_it():
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        for target in _imports(path, modules):
            if _layer(target) > _layer(name):
                wrong.append(f"{name} (layer {_layer(name)}) imports {target} (layer {_layer(target)})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycles():
    modules = _modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_no_private_name_crosses_a_module():
    modules = _modules()
    crossing = []
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("roost"):
                crossing += [
                    f"{name} imports {node.module}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.endswith("__")
                ]
    assert not crossing, crossing
