"""Where every parameter and buffer lives in the network's flat arrays: the one description.

``params = [every parameter that takes L2 … | every other parameter …]`` (each block in the
layers' depth-first order, each array row-major), so L2 acts on the contiguous prefix
``params[:n_decay]`` and an optimizer updates everything with whole-buffer operations;
``grads`` and the optimizer's state share this layout. Buffers (non-trained state) live in a
second flat array. Names are paths: ``"2.body.0.W"`` is parameter W of layer 0 of the body of
layer 2. Checkpoints, diagnostics, gradcheck, the estimators' ``coefs_`` and error messages
read this and nothing else.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator

from .tree import walk

__all__ = ["Entry", "Layout"]

Array = Any


@dataclass(frozen=True)
class Entry:
    """One array: ``name`` (its path), ``layer`` (the layer's path), ``offset``/``shape`` in its flat
    buffer, ``decay`` (L2 applies), ``init`` (its initializer), ``kind`` ("param" or "buffer")."""

    name: str
    layer: str
    attr: str
    offset: int
    shape: tuple[int, ...]
    decay: bool
    init: str
    kind: str = "param"

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def stop(self) -> int:
        return self.offset + self.size

    def view(self, flat: Array, xp: Any) -> Array:
        """This entry's array as a view of ``flat``."""
        piece = flat[self.offset:self.stop]
        return piece if len(self.shape) == 1 else xp.reshape(piece, self.shape)

    def describe(self) -> dict:
        return {"name": self.name, "offset": self.offset, "shape": list(self.shape), "decay": self.decay,
                "kind": self.kind}


class Layout:
    """The entries of a built layer tree (see the module docstring)."""

    def __init__(self, root: Any):
        decayed, other, buffers = [], [], []
        for path, layer in walk(root):
            for p in layer.params():
                (decayed if p.decay else other).append((path, p))
            for b in layer.buffers():
                buffers.append((path, b))
        self.params: tuple[Entry, ...] = self._place(decayed + other, "param")
        self.buffers: tuple[Entry, ...] = self._place(buffers, "buffer")
        self.n_params = self.params[-1].stop if self.params else 0
        self.n_decay = sum(e.size for e in self.params if e.decay)
        self.n_buffers = self.buffers[-1].stop if self.buffers else 0
        self._by_name = {e.name: e for e in self.params + self.buffers}

    @staticmethod
    def _place(items: list, kind: str) -> tuple[Entry, ...]:
        out, offset = [], 0
        for path, spec in items:
            name = f"{path}.{spec.name}" if path else spec.name
            entry = Entry(name, path, spec.name, offset, tuple(spec.shape), getattr(spec, "decay", False),
                          spec.init, kind)
            out.append(entry)
            offset = entry.stop
        return tuple(out)

    def __getitem__(self, name: str) -> Entry:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no parameter or buffer named {name!r}; names: {list(self._by_name)}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.params + self.buffers)

    def of_layer(self, path: str, kind: str = "param") -> dict[str, Entry]:
        """{attribute name: entry} of the layer at ``path``."""
        entries = self.params if kind == "param" else self.buffers
        return {e.attr: e for e in entries if e.layer == path}

    def locate(self, index: int) -> Entry:
        """The parameter entry holding flat index ``index``."""
        for e in self.params:
            if e.offset <= index < e.stop:
                return e
        raise IndexError(f"flat index {index} is outside the {self.n_params} parameters")

    def describe(self) -> list[dict]:
        """JSON description of every entry (as stored in checkpoints)."""
        return [e.describe() for e in self]

    def __repr__(self) -> str:
        return f"Layout({self.n_params} parameters ({self.n_decay} with L2), {self.n_buffers} buffer values)"
