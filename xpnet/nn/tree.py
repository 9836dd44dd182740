"""Walking a layer tree: every layer with its path, and the input width the tree declares."""
from __future__ import annotations

from typing import Any, Iterator

__all__ = ["walk", "input_width"]


def walk(layer: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, layer) for ``layer`` and everything inside it, depth-first (parents first)."""
    yield path, layer
    for name, child in layer.children():
        yield from walk(child, f"{path}.{name}" if path else name)


def input_width(layer: Any) -> int | None | type(Ellipsis):
    """The input width a tree declares: that of its first layer (depth-first) that fixes one — a
    Dense's ``n_in`` or a BatchNorm1d's ``n`` (None: left open). Ellipsis when no layer fixes one."""
    for _, child in layer.children():
        width = input_width(child)
        if width is not Ellipsis:
            return width
    for attr in ("n_in", "n"):
        if hasattr(layer, attr):
            return getattr(layer, attr)
    return Ellipsis
