"""The layer contract, and the registry that turns layer configs (JSON) back into layers.

A layer

* declares its trainable parameters (:class:`Param`: name, shape, initializer, whether L2
  applies) and its non-trained buffers (:class:`Buffer`, e.g. BatchNorm's running statistics)
  once ``build(n_in)`` has told it its input width;
* is **bound** by its network to views of the network's flat buffers: after ``bind`` a
  parameter ``W`` is the attribute ``self.W``, its gradient ``self.grad_W``, a buffer ``m``
  ``self.m`` (the layer never allocates its own parameters);
* implements ``forward(x, training) -> (y, cache)`` (the cache holds exactly what backward
  needs) and ``backward(dy, cache) -> dx``, writing parameter gradients into ``grad_*``
  (overwriting them). ``need_dx`` (set by the network) says whether dx must be returned:
  layers with nothing trainable before them return None instead.

x is (batch, features) throughout. Layers that draw random numbers name their stream family
(``stream_kind``); the network numbers them in depth-first order (see :mod:`xpnet.random`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ._context import Context

__all__ = ["Param", "Buffer", "Layer", "register", "layer_from_config", "LAYERS"]

Array = Any


@dataclass(frozen=True)
class Param:
    """A trainable array: ``init`` names an initializer of :mod:`xpnet.nn.init`; ``decay``: L2 applies."""

    name: str
    shape: tuple[int, ...]
    init: str
    decay: bool


@dataclass(frozen=True)
class Buffer:
    """A non-trained array kept with the parameters (checkpointed, not optimized)."""

    name: str
    shape: tuple[int, ...]
    init: str = "zeros"


class Layer:
    """Base class: a parameterless, stateless identity. Subclasses override what they need."""

    stream_kind: str | None = None  # "init" or "dropout": the RNG stream family this layer draws from
    need_dx: bool = True
    xp: Any = None  # the array namespace, set by bind

    def __init__(self) -> None:
        self.stream: int | None = None  # set by the network from the layer's position
        self.ctx: Context | None = None

    # ---- structure
    def build(self, n_in: int | None) -> int | None:
        """Fix the input width (None: not known yet) and return the output width."""
        return n_in

    def params(self) -> list[Param]:
        return []

    def buffers(self) -> list[Buffer]:
        return []

    def children(self) -> list[tuple[str, "Layer"]]:
        """(name, layer) pairs of the layers this one contains; a child's path is ``path.name``."""
        return []

    def set_need_dx(self, need: bool) -> bool:
        """Record whether dx must be returned; returns whether dx is needed *after* this layer
        (true once anything trainable has been passed)."""
        self.need_dx = need
        return need or bool(self.params())

    def bind(self, ctx: Context, values: dict[str, Array], grads: dict[str, Array],
             buffers: dict[str, Array]) -> None:
        """Attach the network's views: ``self.<name>``, ``self.grad_<name>``, buffers ``self.<name>``."""
        self.ctx, self.xp = ctx, ctx.xp
        for name, v in values.items():
            setattr(self, name, v)
            setattr(self, f"grad_{name}", grads[name])
        for name, v in buffers.items():
            setattr(self, name, v)

    # ---- computation
    def forward(self, x: Array, training: bool = False) -> tuple[Array, Any]:
        return x, None

    def backward(self, dy: Array, cache: Any) -> Array | None:
        return dy if self.need_dx else None

    # ---- description
    def config(self) -> dict:
        """The constructor arguments as JSON (``type`` names the class in :data:`LAYERS`)."""
        return {"type": type(self).__name__}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "type")
        return f"{type(self).__name__}({args})"


LAYERS: dict[str, Callable[..., Layer]] = {}


def register(cls: type) -> type:
    """Class decorator: make ``cls`` constructible from its config (``{"type": cls.__name__, ...}``)."""
    LAYERS[cls.__name__] = cls
    return cls


def layer_from_config(cfg: Any) -> Layer:
    """A layer from :meth:`Layer.config` output (nested configs included); never unpickles."""
    if not isinstance(cfg, dict) or not isinstance(cfg.get("type"), str):
        raise ValueError(f"a layer config must be a JSON object with a 'type', got {cfg!r:.80}")
    cls = LAYERS.get(cfg["type"])
    if cls is None:
        raise ValueError(f"unknown layer type {cfg['type']!r}: use one of {sorted(LAYERS)}")
    args = {k: v for k, v in cfg.items() if k != "type"}
    from_config = getattr(cls, "from_config", None)
    try:
        return from_config(args) if from_config is not None else cls(**args)
    except TypeError as exc:
        raise ValueError(f"bad arguments for layer {cfg['type']}: {exc}") from None
