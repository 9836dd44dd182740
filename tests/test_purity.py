"""xpnet/ must reach array libraries only through the array API; backends/ must not import xpnet."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_LIBS = ("numpy", "cupy", "torch", "jax", "jaxlib", "array_api_strict")
# array_api_compat itself is allowed; its per-library wrappers import those libraries.
ARRAY_LIBRARIES = {*_LIBS, *(f"array_api_compat.{m}" for m in ("numpy", "cupy", "torch", "jax", "dask"))}


def _is_forbidden(module: str, banned: set[str]) -> bool:
    return any(module == b or module.startswith(b + ".") for b in banned)


def _dynamic_target(call: ast.Call) -> str | None:
    """The module named by ``importlib.import_module("x")`` / ``__import__("x")`` calls."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in ("import_module", "__import__") or not call.args:
        return None
    arg = call.args[0]
    return arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None


def forbidden_imports(source: str, banned: set[str], filename: str = "<source>") -> list[str]:
    """``"file:line: module"`` for every import of a banned top-level module in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Call) and (target := _dynamic_target(node)):
            modules = [target]
        found += [f"{filename}:{node.lineno}: {m}" for m in modules if _is_forbidden(m, banned)]
    return found


def _scan(folder: str, banned: set[str]) -> list[str]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        found += forbidden_imports(path.read_text(encoding="utf-8"), banned, rel)
    return found


def test_xpnet_imports_no_array_library() -> None:
    found = _scan("xpnet", ARRAY_LIBRARIES)
    assert not found, "xpnet/ must use only the array API (via backends):\n" + "\n".join(found)


def test_xpnet_imports_no_sparse_library() -> None:
    """Sparse input reaches xpnet/ only as backends.SparseRows: SciPy and cupyx stay in backends/."""
    found = _scan("xpnet", {"scipy", "cupyx"})
    assert not found, "xpnet/ must reach sparse matrices only through backends:\n" + "\n".join(found)


def test_backends_do_not_import_xpnet() -> None:
    assert (ROOT / "backends" / "__init__.py").is_file()
    found = _scan("backends", {"xpnet"})
    assert not found, "backends/ must not depend on xpnet:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        "import numpy",
        "import numpy as np",
        "import os, torch.nn",
        "from numpy import linalg",
        "from numpy.random import default_rng",
        "from cupy.cuda import Device",
        "import jax.numpy as jnp",
        "import array_api_strict",
        "from array_api_compat import numpy",
        "import array_api_compat.torch",
        "import importlib\nnp = importlib.import_module('numpy')",
        "from importlib import import_module\nimport_module('cupy.cuda')",
        "np = __import__('numpy')",
        "def f():\n    import torch\n    return torch",
        "try:\n    import cupy\nexcept ImportError:\n    cupy = None",
    ],
)
def test_checker_catches(source: str) -> None:
    assert forbidden_imports(source, ARRAY_LIBRARIES)


@pytest.mark.parametrize(
    "source",
    [
        "import array_api_compat",
        "from array_api_compat import array_namespace, device",
        "from . import numpy_like",
        "from .torchish import thing",
        "import numpyro_style_name",
        "x = 'import numpy'",
        "import importlib\nimportlib.import_module(name)",
    ],
)
def test_checker_allows(source: str) -> None:
    assert not forbidden_imports(source, ARRAY_LIBRARIES)


# ------------------------------------------------------------------ import graph
def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(packages: tuple[str, ...] = ("xpnet", "backends")) -> dict[str, set[str]]:
    """module -> the project modules it imports anywhere in its source (function-level imports too)."""
    files = {_module_name(p): p for pkg in packages for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for t in targets:
                while t and t not in files:
                    t = t.rpartition(".")[0]
                if t and t != mod:
                    graph[mod].add(t)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
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


def _without_package_inits(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """A package's __init__ re-exports its modules; a module importing a sibling through the package
    (``from ..nn import Dense``) depends on that sibling, not on the __init__'s other imports. So an edge
    into another package is redirected to the modules the package imports from itself; an edge into an
    enclosing package (a name its __init__ defines) stays an edge into that __init__."""
    packages = {m for m in graph if (ROOT / m.replace(".", "/") / "__init__.py").is_file()}
    out = {}
    for mod, deps in graph.items():
        resolved = set()
        for d in deps:
            if d in packages and not (mod + ".").startswith(d + "."):
                resolved |= {s for s in graph[d] if s.startswith(d + ".")} or {d}
            else:  # a module, or a name from an enclosing package's own __init__ (a real edge into it)
                resolved.add(d)
        out[mod] = resolved - {mod}
    return out


def test_no_import_circles() -> None:
    graph = _without_package_inits(import_graph())
    assert graph["xpnet.train.loop"] and "xpnet.nn.network" in graph["xpnet.nn.mlp"]  # the graph is real
    cycles = _cycles(graph)
    assert not cycles, "import circles (function-level imports count):\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_cycle_finder_finds_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
