"""Layers: forward and hand-derived backward side by side.

Contract (see shared DESIGN): ``forward(x, training) -> (y, cache)`` where the cache
holds exactly what backward needs; ``backward(dy, cache) -> dx``. Parametric layers
write their parameter gradients into the views ``grad_W``/``grad_b`` they were given.
Shapes: x is (batch, fan_in); every activation is elementwise, y has x's shape.
"""
from __future__ import annotations

import math
from typing import Any

from . import random as xrandom
from ._xp import Array, fast_path

__all__ = [
    "Dense", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "Identity", "Softmax", "Dropout",
    "ACTIVATIONS", "make_activation", "sigmoid",
]


class Dense:
    """Affine map ``y = x @ W + b`` with W of shape (fan_in, fan_out), b of shape (fan_out,).

    Backward: ``dW = xᵀ dy``, ``db = Σ_batch dy``, ``dx = dy Wᵀ``.
    ``W, b, grad_W, grad_b`` are views into the model's flat buffers.
    """

    def __init__(self, xp: Any, W: Array, b: Array, grad_W: Array, grad_b: Array, need_dx: bool = True):
        self.xp, self.W, self.b, self.grad_W, self.grad_b = xp, W, b, grad_W, grad_b
        self.need_dx = need_dx  # the first layer's dx (w.r.t. the data) is not needed in training
        self._fused = fast_path(xp, "dense_backward")  # same math, no temporary copies

    def forward(self, x: Array, training: bool = False) -> tuple[Array, Array]:
        y = x @ self.W
        y += self.b  # in place: one pass, no second temporary
        return y, x

    def backward(self, dy: Array, x: Array) -> Array | None:
        if self._fused is not None:
            return self._fused(x, dy, self.W, self.grad_W, self.grad_b, self.need_dx)
        self.grad_W[...] = x.T @ dy
        self.grad_b[...] = self.xp.sum(dy, axis=0)
        return dy @ self.W.T if self.need_dx else None


def init_weights(xp: Any, scheme: str, fan_in: int, fan_out: int, seed: int, stream: int,
                 dtype: Any, device: Any) -> Array:
    """Initial W of shape (fan_in, fan_out).

    he_normal: N(0, 2/fan_in); he_uniform: U(±sqrt(6/fan_in));
    glorot_normal: N(0, 2/(fan_in+fan_out)); glorot_uniform: U(±sqrt(6/(fan_in+fan_out))).
    Draws come from :mod:`xpnet.random`, so they are bit-identical on every backend.
    """
    shape = (fan_in, fan_out)
    if scheme == "he_normal":
        return xrandom.normal(xp, shape, seed, stream, std=math.sqrt(2.0 / fan_in), dtype=dtype, device=device)
    if scheme == "glorot_normal":
        return xrandom.normal(xp, shape, seed, stream, std=math.sqrt(2.0 / (fan_in + fan_out)),
                              dtype=dtype, device=device)
    if scheme == "he_uniform":
        lim = math.sqrt(6.0 / fan_in)
    elif scheme == "glorot_uniform":
        lim = math.sqrt(6.0 / (fan_in + fan_out))
    else:
        raise ValueError(f"unknown init {scheme!r}: use one of {sorted(INITS)}")
    return xrandom.uniform(xp, shape, seed, stream, low=-lim, high=lim, dtype=dtype, device=device)


INITS = {"he_normal": "he_normal", "he_uniform": "he_uniform", "glorot_normal": "glorot_normal",
         "glorot_uniform": "glorot_uniform", "xavier_normal": "glorot_normal",
         "xavier_uniform": "glorot_uniform", "he": "he_normal", "xavier": "glorot_normal",
         "glorot": "glorot_normal"}


# ---------------------------------------------------------------- activations
class Activation:
    """Elementwise activation; subclasses define forward and backward."""

    name = "activation"

    def __init__(self, xp: Any):
        self.xp = xp

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Identity(Activation):
    """y = x; dx = dy."""

    name = "identity"

    def forward(self, x: Array, training: bool = False) -> tuple[Array, None]:
        return x, None

    def backward(self, dy: Array, cache: None) -> Array:
        return dy


class ReLU(Activation):
    """y = max(x, 0) = x · [x > 0]; dx = dy · [x > 0] (the subgradient at 0 is taken as 0).

    The cache is the 0/1 mask [x > 0] in x's dtype (a multiply is cheaper than a select).
    """

    name = "relu"

    def __init__(self, xp: Any):
        super().__init__(xp)
        self._fused = fast_path(xp, "relu_forward")

    def forward(self, x: Array, training: bool = False) -> tuple[Array, Array]:
        if self._fused is not None:
            return self._fused(x)
        mask = self.xp.astype(x > 0.0, x.dtype)
        return x * mask, mask

    def backward(self, dy: Array, mask: Array) -> Array:
        return dy * mask


class LeakyReLU(Activation):
    """y = x if x > 0 else αx; dx = dy if x > 0 else α·dy."""

    name = "leaky_relu"

    def __init__(self, xp: Any, alpha: float = 0.01):
        super().__init__(xp)
        self.alpha = float(alpha)

    def forward(self, x: Array, training: bool = False) -> tuple[Array, Array]:
        positive = x > 0.0
        return self.xp.where(positive, x, self.alpha * x), positive

    def backward(self, dy: Array, positive: Array) -> Array:
        return self.xp.where(positive, dy, self.alpha * dy)


def sigmoid(xp: Any, x: Array) -> Array:
    """σ(x) = 1/(1+e^-x), stable in both tails: with e = exp(-|x|),
    σ = 1/(1+e) for x ≥ 0 and e/(1+e) for x < 0 (no overflow, no cancellation)."""
    e = xp.exp(-xp.abs(x))
    r = 1.0 / (1.0 + e)
    return xp.where(x >= 0.0, r, e * r)


class Sigmoid(Activation):
    """y = σ(x); dx = dy · y (1 - y)."""

    name = "sigmoid"

    def forward(self, x: Array, training: bool = False) -> tuple[Array, Array]:
        y = sigmoid(self.xp, x)
        return y, y

    def backward(self, dy: Array, y: Array) -> Array:
        return dy * (y * (1.0 - y))


class Tanh(Activation):
    """y = tanh(x); dx = dy · (1 - y²)."""

    name = "tanh"

    def forward(self, x: Array, training: bool = False) -> tuple[Array, Array]:
        y = self.xp.tanh(x)
        return y, y

    def backward(self, dy: Array, y: Array) -> Array:
        return dy * (1.0 - y * y)


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

    def backward(self, dy: Array, cache: tuple[Array, Array]) -> Array:
        x, t = cache
        dudx = self.C * (1.0 + (3.0 * self.A) * (x * x))
        return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dudx)


class Softmax(Activation):
    """Row-wise softmax y_ij = exp(x_ij - m_i) / Σ_k exp(x_ik - m_i), m_i = max_k x_ik.

    Backward (Jacobian-vector product): dx = y ⊙ (dy - Σ_j dy_j y_j).
    As the output of a classifier it is fused with cross-entropy (see losses).
    """

    name = "softmax"

    def forward(self, x: Array, training: bool = False) -> tuple[Array, Array]:
        xp = self.xp
        e = xp.exp(x - xp.max(x, axis=1, keepdims=True))
        y = e / xp.sum(e, axis=1, keepdims=True)
        return y, y

    def backward(self, dy: Array, y: Array) -> Array:
        return y * (dy - self.xp.sum(dy * y, axis=1, keepdims=True))


ACTIVATIONS = {"relu": ReLU, "leaky_relu": LeakyReLU, "sigmoid": Sigmoid, "tanh": Tanh,
               "gelu": GELU, "identity": Identity, "linear": Identity, "softmax": Softmax}


def make_activation(name: str, xp: Any) -> Activation:
    """An activation by name (one of ``ACTIVATIONS``)."""
    try:
        cls = ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown activation {name!r}: use one of {sorted(ACTIVATIONS)}") from None
    return cls(xp)


# ---------------------------------------------------------------- dropout
class Dropout:
    """Inverted dropout: y = x ⊙ m / (1 - p) with m ~ Bernoulli(1 - p) drawn in forward.

    Backward reuses the mask: dx = dy ⊙ m / (1 - p). Identity when not training or p = 0.
    The mask of the c-th training forward is a pure function of (seed, stream, c)
    (:func:`xpnet.random.dropout_keep`), so it is the same on every backend.
    p is quantized to multiples of 2⁻¹⁶; the scale uses the quantized p.
    """

    def __init__(self, xp: Any, rate: float, seed: int, stream: int, device: Any = None):
        if not (0.0 <= rate < 1.0 and xrandom.dropout_threshold(rate) < 65536):
            raise ValueError(f"dropout rate must be in [0, 1) (and below 1 - 2**-17), got {rate!r}")
        self.xp, self.rate, self.seed, self.stream, self.device = xp, float(rate), seed, stream, device
        self.counter = 0  # number of training forwards so far (part of the RNG state)
        self.scale = 1.0 / (1.0 - xrandom.dropout_threshold(rate) / 65536.0)
        self._fused = fast_path(xp, "dropout_mask")

    def mask(self, shape: tuple[int, ...], dtype: Any, counter: int) -> Array:
        """The scaled mask m / (1 - p) of the ``counter``-th training forward."""
        if self._fused is not None:
            k0, k1 = xrandom.key(self.seed, self.stream, counter)
            return self._fused(shape, dtype, k0, k1, xrandom.dropout_threshold(self.rate), self.scale)
        keep = xrandom.dropout_keep(self.xp, shape, self.rate, self.seed, self.stream, counter, self.device)
        return self.xp.astype(keep, dtype) * self.scale

    def forward(self, x: Array, training: bool = False) -> tuple[Array, Array | None]:
        if not training or self.rate == 0.0:
            return x, None
        m = self.mask(tuple(x.shape), x.dtype, self.counter)
        self.counter += 1
        return x * m, m

    def backward(self, dy: Array, m: Array | None) -> Array:
        return dy if m is None else dy * m
