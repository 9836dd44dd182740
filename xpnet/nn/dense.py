"""The fully connected layer."""
from __future__ import annotations

from typing import Any

from .. import _validate as check
from .._xp import fast_path
from . import init as inits
from .activations import Activation, make_activation
from .layer import Layer, Param, register

__all__ = ["Dense"]

Array = Any
_RELU_LIKE = ("relu", "leaky_relu", "gelu")


@register
class Dense(Layer):
    """y = act(z), z = x @ W + b, with W (n_in, n_out), b (n_out,) and an optional activation.

    Backward: dz = act'(dy) (the activation's own backward); dW = xᵀ dz; db = Σ_batch dz;
    dx = dz Wᵀ. ``n_in=None`` takes the width of whatever comes before (the data's for the
    first layer); ``Dense(64)`` alone means 64 outputs, ``Dense(64, "relu")`` with an activation.
    ``init``: he_normal for relu-like activations, glorot_normal otherwise (see
    :mod:`xpnet.nn.init`); b starts at zero; L2 applies to W only. The RNG stream is the layer's
    ordinal among the network's Dense layers.
    """

    stream_kind = "init"

    def __init__(self, n_in: int | None = None, n_out: int | None = None, activation: str | None = None,
                 init: str | None = None):
        super().__init__()
        if isinstance(n_out, str) and activation is None:  # Dense(64, "relu")
            n_out, activation = None, n_out
        if n_out is None and n_in is not None:  # Dense(64): the output width
            n_in, n_out = None, n_in
        self.n_in = None if n_in is None else check.integer("Dense n_in", n_in, low=1)
        self.n_out = check.integer("Dense n_out", n_out, low=1)
        self.activation = None if activation in (None, "identity", "linear") else str(activation)
        self.act: Activation | None = None if self.activation is None else make_activation(self.activation)
        default = "he_normal" if self.activation in _RELU_LIKE else "glorot_normal"
        self.init = inits.canonical(init or default)
        self.head = False  # set by the network when this layer's activation is the output head
        self.sparse_input = False  # set by the training loop while a sparse X enters this (first) layer

    def build(self, n_in: int | None) -> int:
        if self.n_in is not None and n_in is not None and n_in != self.n_in:
            raise ValueError(f"Dense({self.n_in}, {self.n_out}) receives {n_in} features: the layer "
                             f"before it has width {n_in} (use Dense({n_in}, {self.n_out}) or n_in=None)")
        self.n_in = self.n_in if n_in is None else n_in
        return self.n_out

    def params(self) -> list[Param]:
        if self.n_in is None:
            return []
        return [Param("W", (self.n_in, self.n_out), self.init, decay=True),
                Param("b", (self.n_out,), "zeros", decay=False)]

    def set_need_dx(self, need: bool) -> bool:
        self.need_dx = need
        return True

    def bind(self, ctx: Any, values: dict, grads: dict, buffers: dict) -> None:
        super().bind(ctx, values, grads, buffers)
        if self.act is not None:
            self.act.bind(ctx, {}, {}, {})
        self._fused = fast_path(ctx.xp, "dense_backward")  # same math, no temporary copies

    def forward(self, x: Array, training: bool = False) -> tuple[Array, Any]:
        z = x @ self.W
        z += self.b  # in place: one pass, no second temporary
        if self.act is None or self.head:
            return z, x
        y, act_cache = self.act.forward(z, training)
        return y, (x, act_cache)

    def backward(self, dy: Array, cache: Any) -> Array | None:
        if self.act is None or self.head:
            x = cache
        else:
            x, act_cache = cache
            dy = self.act.backward(dy, act_cache)
        if self._fused is not None and not self.sparse_input:  # sparse x (a full batch): its own product below
            return self._fused(x, dy, self.W, self.grad_W, self.grad_b, self.need_dx)
        self.grad_W[...] = x.T @ dy
        self.grad_b[...] = self.xp.sum(dy, axis=0)
        return dy @ self.W.T if self.need_dx else None

    def config(self) -> dict:
        return {"type": "Dense", "n_in": self.n_in, "n_out": self.n_out, "activation": self.activation,
                "init": self.init}

    def __repr__(self) -> str:
        act = f", {self.activation!r}" if self.activation else ""
        return f"Dense({self.n_in}, {self.n_out}{act})"
