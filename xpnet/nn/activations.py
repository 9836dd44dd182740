"""Elementwise activations (and row-wise softmax): forward and hand-derived backward side by side.

Each is a parameterless layer; y has x's shape. Names (for ``Dense(..., activation=name)`` and
configs) are in :data:`ACTIVATIONS`.
"""
from __future__ import annotations

import math
from typing import Any

from .._xp import fast_path
from .layer import Layer, register

__all__ = ["Activation", "Identity", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "Softmax",
           "ACTIVATIONS", "make_activation", "sigmoid", "HEADS"]

Array = Any


class Activation(Layer):
    """Base of the activations: ``name`` is the registry name."""

    name = "activation"

    def config(self) -> dict:
        return {"type": type(self).__name__}


@register
class Identity(Activation):
    """y = x; dx = dy."""

    name = "identity"

    def forward(self, x: Array, training: bool = False) -> tuple[Array, None]:
        return x, None

    def backward(self, dy: Array, cache: None) -> Array | None:
        return dy if self.need_dx else None


@register
class ReLU(Activation):
    """y = max(x, 0) = x · [x > 0]; dx = dy · [x > 0] (the subgradient at 0 is taken as 0).

    The cache is the 0/1 mask [x > 0] in x's dtype (a multiply is cheaper than a select).
    """

    name = "relu"

    def bind(self, ctx: Any, values: dict, grads: dict, buffers: dict) -> None:
        super().bind(ctx, values, grads, buffers)
        self._fused = fast_path(ctx.xp, "relu_forward")

    def forward(self, x: Array, training: bool = False) -> tuple[Array, Array]:
        if self._fused is not None:
            return self._fused(x)
        mask = self.xp.astype(x > 0.0, x.dtype)
        return x * mask, mask

    def backward(self, dy: Array, mask: Array) -> Array | None:
        return dy * mask if self.need_dx else None


@register
class LeakyReLU(Activation):
    """y = x if x > 0 else αx; dx = dy if x > 0 else α·dy."""

    name = "leaky_relu"

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x: Array, training: bool = False) -> tuple[Array, Array]:
        positive = x > 0.0
        return self.xp.where(positive, x, self.alpha * x), positive

    def backward(self, dy: Array, positive: Array) -> Array | None:
        return self.xp.where(positive, dy, self.alpha * dy) if self.need_dx else None

    def config(self) -> dict:
        return {"type": "LeakyReLU", "alpha": self.alpha}


def sigmoid(xp: Any, x: Array) -> Array:
    """σ(x) = 1/(1+e^-x), stable in both tails: with e = exp(-|x|),
    σ = 1/(1+e) for x ≥ 0 and e/(1+e) for x < 0 (no overflow, no cancellation)."""
    e = xp.exp(-xp.abs(x))
    r = 1.0 / (1.0 + e)
    return xp.where(x >= 0.0, r, e * r)


@register
class Sigmoid(Activation):
    """y = σ(x); dx = dy · y (1 - y)."""

    name = "sigmoid"

    def forward(self, x: Array, training: bool = False) -> tuple[Array, Array]:
        y = sigmoid(self.xp, x)
        return y, y

    def backward(self, dy: Array, y: Array) -> Array | None:
        return dy * (y * (1.0 - y)) if self.need_dx else None


@register
class Tanh(Activation):
    """y = tanh(x); dx = dy · (1 - y²)."""

    name = "tanh"

    def forward(self, x: Array, training: bool = False) -> tuple[Array, Array]:
        y = self.xp.tanh(x)
        return y, y

    def backward(self, dy: Array, y: Array) -> Array | None:
        return dy * (1.0 - y * y) if self.need_dx else None


@register
class GELU(Activation):
    """GELU, tanh form: y = ½x(1 + t), t = tanh(u), u = c(x + a x³), c = √(2/π), a = 0.044715.

    Exact derivative of that forward: dy/dx = ½(1 + t) + ½x(1 - t²)·c(1 + 3a x²).
    """

    name = "gelu"
    C = math.sqrt(2.0 / math.pi)
    A = 0.044715

    def forward(self, x: Array, training: bool = False) -> tuple[Array, tuple[Array, Array]]:
        t = self.xp.tanh(self.C * (x + self.A * (x * x * x)))
        return 0.5 * x * (1.0 + t), (x, t)

    def backward(self, dy: Array, cache: tuple[Array, Array]) -> Array | None:
        if not self.need_dx:
            return None
        x, t = cache
        dudx = self.C * (1.0 + (3.0 * self.A) * (x * x))
        return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dudx)


@register
class Softmax(Activation):
    """Row-wise softmax y_ij = exp(x_ij - m_i) / Σ_k exp(x_ik - m_i), m_i = max_k x_ik.

    Backward (Jacobian-vector product): dx = y ⊙ (dy - Σ_j dy_j y_j).
    As a network's output it is fused with cross-entropy (see :mod:`xpnet.nn.objective`).
    """

    name = "softmax"

    def forward(self, x: Array, training: bool = False) -> tuple[Array, Array]:
        xp = self.xp
        e = xp.exp(x - xp.max(x, axis=1, keepdims=True))
        y = e / xp.sum(e, axis=1, keepdims=True)
        return y, y

    def backward(self, dy: Array, y: Array) -> Array | None:
        return y * (dy - self.xp.sum(dy * y, axis=1, keepdims=True)) if self.need_dx else None


ACTIVATIONS: dict[str, type[Activation]] = {
    "relu": ReLU, "leaky_relu": LeakyReLU, "sigmoid": Sigmoid, "tanh": Tanh, "gelu": GELU,
    "identity": Identity, "linear": Identity, "softmax": Softmax}
# Activations a network can take as its output head (fused with the loss).
HEADS = ("sigmoid", "softmax", "identity")


def make_activation(name: Any) -> Activation:
    """A new activation layer by name (one of :data:`ACTIVATIONS`)."""
    cls = ACTIVATIONS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown activation {name!r}: use one of {sorted(ACTIVATIONS)}")
    return cls()
