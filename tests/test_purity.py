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
