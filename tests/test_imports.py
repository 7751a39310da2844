"""Imports go one way: topologies <- nn/kernels <- models; data (FASTA, genomes, sampling) needs
neither nn nor models; models and data <- tasks <- train <- cli.

Two checks: the module-level import graph (read with ``ast``) is acyclic and never points up the
layer order, and every module imports on its own in a fresh interpreter.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Layer of each top-level part; a module may import only from its own layer or lower ones.
LAYERS = {"topologies": 0, "sparsemix.errors": 0, "sparsemix._io": 0, "sparsemix.nn": 1,
          "sparsemix.kernels": 1, "sparsemix.reference": 1, "sparsemix.data": 1,
          "sparsemix.models": 2, "sparsemix.tasks": 4, "sparsemix.train": 5, "sparsemix.tools": 6,
          "sparsemix.cli": 6, "sparsemix.__main__": 7, "sparsemix": 1}


def _modules() -> dict[str, Path]:
    found = {}
    for package in ("topologies", "sparsemix"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _layer(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[best]


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        package = package[:len(package) - node.level + 1]
        base = ".".join(package + ([node.module] if node.module else []))
    targets = [f"{base}.{alias.name}" for alias in node.names]
    return [t if t in MODULES else base for t in targets]


def _top_level_imports(module: str, path: Path) -> set[str]:
    """Project modules imported when ``module`` is imported (module level, not in functions)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in tree.body:  # only statements that run at import time
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.update(_resolve(module, path, node))
    return {name for name in found if name in MODULES and name != module}


GRAPH = {m: _top_level_imports(m, p) for m, p in MODULES.items()}


def _find_cycle(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return []


def test_the_graph_sees_the_project():
    assert len(MODULES) > 30
    assert "sparsemix.train.config" in GRAPH["sparsemix.train.loop"]
    assert "sparsemix.errors" in GRAPH["sparsemix.train.config"]


def test_cycle_finder_finds_a_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    cycle = _find_cycle(GRAPH)
    assert not cycle, " -> ".join(cycle)


def test_imports_respect_the_layer_order():
    upward = [f"{m} -> {t}" for m, targets in GRAPH.items() for t in targets
              if _layer(t) > _layer(m) and not m.startswith(t + ".") and m != "sparsemix"]
    assert not upward, upward


def test_topologies_never_imports_sparsemix():
    bad = [m for m in MODULES if m.startswith("topologies")
           if any(t.startswith("sparsemix") for t in GRAPH[m])]
    assert not bad


def test_the_library_never_imports_demos_or_benchmarks():
    """demos/ and benchmarks/ use the library; nothing in it (not even inside a function) uses them."""
    bad = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            bad += [f"{module} -> {n}" for n in names if n.split(".")[0] in ("demos", "benchmarks")]
    assert not bad, bad


IN_ORDER = sorted(MODULES, key=lambda m: (_layer(m), m))


def test_every_module_imports_in_dependency_order_in_a_fresh_interpreter():
    script = ("import importlib, sys\n"
              f"for name in {IN_ORDER!r}:\n"
              "    importlib.import_module(name)\n"
              "    print(name, flush=True)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1:]
    assert done.stdout.split() == IN_ORDER


@pytest.mark.slow
@pytest.mark.parametrize("module", IN_ORDER)
def test_module_imports_alone_in_a_fresh_interpreter(module):
    done = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1:]
