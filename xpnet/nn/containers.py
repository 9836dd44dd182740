"""Combinators: a chain of layers, and a residual block y = body(x) + shortcut(x)."""
from __future__ import annotations

from typing import Any, Iterable

from .dense import Dense
from .layer import Layer, layer_from_config, register

__all__ = ["Sequential", "Residual", "as_layer"]

Array = Any


def as_layer(obj: Any, what: str = "a layer") -> Layer:
    """A layer, or a list/tuple of layers as a :class:`Sequential`."""
    if isinstance(obj, Layer):
        return obj
    if isinstance(obj, (list, tuple)):
        return Sequential(obj)
    raise ValueError(f"{what} must be an xpnet layer (e.g. xpnet.nn.Dense(64, 32, 'relu')) or a list of "
                     f"layers, got {obj!r:.80}")


@register
class Sequential(Layer):
    """y = f_k(… f_2(f_1(x))); backward runs the layers in reverse, each taking the dx of the next.

    Children are named by position ("0", "1", …); nesting is allowed. Backward stops early
    at the first layer that returns no dx (nothing trainable lies before it).
    """

    def __init__(self, layers: Iterable[Any]):
        super().__init__()
        if isinstance(layers, Layer) or not isinstance(layers, (list, tuple)):
            raise ValueError(f"Sequential takes a list of layers, got {layers!r:.80}")
        self.layers = [as_layer(layer, f"item {i} of the layer list") for i, layer in enumerate(layers)]
        if not self.layers:
            raise ValueError("a layer list must hold at least one layer")

    def children(self) -> list[tuple[str, Layer]]:
        return [(str(i), layer) for i, layer in enumerate(self.layers)]

    def build(self, n_in: int | None) -> int | None:
        for layer in self.layers:
            n_in = layer.build(n_in)
        return n_in

    def set_need_dx(self, need: bool) -> bool:
        self.need_dx = need
        for layer in self.layers:
            need = layer.set_need_dx(need)
        return need

    def forward(self, x: Array, training: bool = False) -> tuple[Array, list[Any]]:
        caches = []
        for layer in self.layers:
            x, cache = layer.forward(x, training)
            caches.append(cache)
        return x, caches

    def backward(self, dy: Array, caches: list[Any]) -> Array | None:
        for layer, cache in zip(reversed(self.layers), reversed(caches)):
            dy = layer.backward(dy, cache)
            if dy is None:
                return None
        return dy

    def config(self) -> dict:
        return {"type": "Sequential", "layers": [layer.config() for layer in self.layers]}

    @classmethod
    def from_config(cls, args: dict) -> "Sequential":
        layers = args.get("layers")
        if not isinstance(layers, list):
            raise ValueError("a Sequential config needs a list 'layers'")
        return cls([layer_from_config(c) for c in layers])

    def __repr__(self) -> str:
        return f"Sequential({self.layers!r})"


@register
class Residual(Layer):
    """y = body(x) + shortcut(x); dx = body'(dy) + shortcut'(dy).

    ``shortcut=None`` is the identity when body keeps the width, and a Dense projection
    (no activation, built automatically) when it changes it. ``body`` is a layer or a list.
    """

    def __init__(self, body: Any, shortcut: Any = None):
        super().__init__()
        self.body = as_layer(body, "Residual body")
        self.shortcut_given = shortcut is not None
        self.shortcut: Layer | None = None if shortcut is None else as_layer(shortcut, "Residual shortcut")

    def children(self) -> list[tuple[str, Layer]]:
        return [("body", self.body)] + ([("shortcut", self.shortcut)] if self.shortcut is not None else [])

    def build(self, n_in: int | None) -> int | None:
        n_out = self.body.build(n_in)
        if self.shortcut is None and n_in is not None and n_out is not None and n_out != n_in:
            self.shortcut = Dense(n_in, n_out)  # the projection for a width change
        n_short = self.shortcut.build(n_in) if self.shortcut is not None else n_in
        if n_short is not None and n_out is not None and n_short != n_out:
            raise ValueError(f"Residual: the body gives width {n_out} but the shortcut gives {n_short}; "
                             f"both must match to be added")
        return n_out

    def set_need_dx(self, need: bool) -> bool:
        self.need_dx = need
        after = self.body.set_need_dx(need)
        if self.shortcut is not None:
            after = self.shortcut.set_need_dx(need) or after
        return after

    def forward(self, x: Array, training: bool = False) -> tuple[Array, tuple[Any, Any]]:
        y, body_cache = self.body.forward(x, training)
        if self.shortcut is None:
            return y + x, (body_cache, None)
        s, short_cache = self.shortcut.forward(x, training)
        return y + s, (body_cache, short_cache)

    def backward(self, dy: Array, cache: tuple[Any, Any]) -> Array | None:
        body_cache, short_cache = cache
        dx = self.body.backward(dy, body_cache)
        ds = dy if self.shortcut is None else self.shortcut.backward(dy, short_cache)
        if not self.need_dx:
            return None
        return dx + ds

    def config(self) -> dict:
        return {"type": "Residual", "body": self.body.config(),
                "shortcut": self.shortcut.config() if self.shortcut_given else None}

    @classmethod
    def from_config(cls, args: dict) -> "Residual":
        shortcut = args.get("shortcut")
        return cls(layer_from_config(args.get("body")), None if shortcut is None else layer_from_config(shortcut))

    def __repr__(self) -> str:
        extra = f", shortcut={self.shortcut!r}" if self.shortcut_given else ""
        return f"Residual({self.body!r}{extra})"
