"""Give a built layer tree its flat arrays: number the random layers, lay out, initialize, bind."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import _validate as check
from .. import random as xrandom
from ._context import Context
from .init import initial_value
from .layout import Layout
from .tree import walk

__all__ = ["Bound", "bind_tree", "bind_views", "number_streams", "check_memory", "standalone"]

Array = Any


@dataclass
class Bound:
    """A layer tree's flat arrays: ``params``, ``grads`` (same layout), ``buffers``; ``streams``
    maps each random layer's path to its RNG stream."""

    layout: Layout
    params: Array
    grads: Array
    buffers: Array
    streams: dict[str, int]


def bind_tree(root: Any, ctx: Context) -> Bound:
    """Number the random layers (the k-th layer of stream kind K gets ``STREAMS[K] + k``, depth-first),
    allocate zeroed flat arrays for the :class:`Layout`, draw every initial value from
    (seed, stream, 0) and bind each layer to its views."""
    streams = number_streams(root)
    for path, layer in walk(root):
        if path in streams:
            layer.stream = streams[path]
    layout = Layout(root)
    xp, dev, dtype = ctx.xp, ctx.device, ctx.dtype
    check_memory(layout, xp.finfo(dtype).bits // 8)
    params = xp.zeros(layout.n_params, dtype=dtype, device=dev)
    grads = xp.zeros_like(params)
    buffers = xp.zeros(layout.n_buffers, dtype=dtype, device=dev)
    for flat, entries in ((params, layout.params), (buffers, layout.buffers)):
        for e in entries:
            value = initial_value(e.init, xp, e.shape, ctx.seed, streams.get(e.layer), dtype, dev)
            if value is not None:
                flat[e.offset:e.stop] = xp.reshape(value, (-1,))
    bind_views(root, layout, ctx, params, grads, buffers)
    return Bound(layout, params, grads, buffers, streams)


def number_streams(root: Any) -> dict[str, int]:
    """{path: RNG stream} of the random layers: the k-th layer of stream kind K gets ``STREAMS[K] + k``."""
    counts: dict[str, int] = {}
    streams: dict[str, int] = {}
    for path, layer in walk(root):
        kind = layer.stream_kind
        if kind is not None:
            streams[path] = xrandom.STREAMS[kind] + counts.get(kind, 0)
            counts[kind] = counts.get(kind, 0) + 1
    return streams


def bind_views(root: Any, layout: Layout, ctx: Context, params: Array, grads: Array, buffers: Array) -> None:
    """Bind every layer of ``root`` to its views of the flat ``params``, ``grads`` and ``buffers``
    (which may be compute-dtype copies of the master arrays: see :class:`~xpnet.nn.network.Network`)."""
    xp = ctx.xp
    for path, layer in walk(root):
        entries, bufs = layout.of_layer(path), layout.of_layer(path, "buffer")
        layer.bind(ctx, {a: e.view(params, xp) for a, e in entries.items()},
                   {a: e.view(grads, xp) for a, e in entries.items()},
                   {a: e.view(buffers, xp) for a, e in bufs.items()})
    root.set_need_dx(False)  # nothing trainable comes before the root's input


def check_memory(layout: Layout, itemsize: int) -> None:
    """Refuse (one line, before allocating) a layout whose training state would not fit in memory: the
    parameters, their gradients and two optimizer moments (``4 × n_params``) plus the buffers."""
    check.allocation(f"a network of {layout.n_params:,} parameters (training it holds parameters, gradients and "
                     f"two optimizer moments of {itemsize} bytes each)",
                     (4 * layout.n_params + layout.n_buffers) * itemsize, "use fewer or narrower layers")


def standalone(layer: Any, n_in: int, backend: Any = "numpy", dtype: str = "float32", seed: int = 0) -> Bound:
    """Build ``layer`` (any layer or container) for ``n_in`` input features and bind it to fresh flat
    arrays of its own on ``backend``, initialized as a network would (dx is returned by its backward).
    For exploring or testing one layer: ``b = standalone(Dense(3, 4), 3); y, c = layer.forward(x)``."""
    import backends as _backends

    be = _backends.get(backend)
    layer.build(n_in)
    bound = bind_tree(layer, Context(be.xp, be.device, be.dtype(dtype), seed))
    layer.set_need_dx(True)
    return bound
