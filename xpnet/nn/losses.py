"""Losses: each returns ``(value, gradient)`` with value the batch mean (a 0-d array).

Classification losses take the *logits* z (pre-activation of the output layer) and
fuse the output activation, so the gradient is the familiar ``(p - y) / B``.
``mse`` takes the output activations ŷ. Targets Y have the logits' shape
(B, 1) for binary labels, (B, k) one-hot for classes, (B, k) for regression.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

from .._xp import Array, device

__all__ = ["binary_cross_entropy", "softmax_cross_entropy", "mse", "l2_penalty", "LOSSES", "Loss",
           "get_loss", "one_hot", "sigmoid_terms", "softmax_terms"]


def binary_cross_entropy(xp: Any, z: Array, y: Array) -> tuple[Array, Array]:
    """BCE from logits, per element ℓ = softplus(z) - y z = max(z, 0) - y z + log1p(e^{-|z|}).

    Exact and finite for |z| up to the dtype's max (e^{-|z|} underflows to 0 harmlessly).
    value = mean over all elements; d value / dz = (σ(z) - y) / (B·k).
    """
    n = z.shape[0] * z.shape[1]
    terms, p = sigmoid_terms(xp, z, y)
    return xp.sum(terms) * (1.0 / n), (p - y) * (1.0 / n)


def sigmoid_terms(xp: Any, z: Array, y: Array) -> tuple[Array, Array]:
    """Per element, from logits: (softplus(z) - y z, σ(z)), both stable in both tails
    (softplus(z) = max(z, 0) + log1p(e^{-|z|}); σ(z) = 1/(1 + e^{-|z|}), or e^{-|z|} times that for z < 0)."""
    e = xp.exp(-xp.abs(z))
    r = 1.0 / (1.0 + e)
    return xp.maximum(z, 0.0) - z * y + xp.log1p(e), xp.where(z >= 0.0, r, e * r)


def softmax_cross_entropy(xp: Any, z: Array, y: Array) -> tuple[Array, Array]:
    """Softmax cross-entropy from logits via log-sum-exp, y one-hot (or any row-stochastic) (B, k).

    s = z - max_k z; log p = s - log Σ_k e^s; value = -(1/B) Σ_ij y_ij log p_ij;
    d value / dz = (softmax(z) - y) / B (using Σ_j y_ij = 1).
    """
    inv_b = 1.0 / z.shape[0]
    s, es, total = softmax_terms(xp, z)
    value = (xp.sum(xp.log(total)) - xp.sum(y * s)) * inv_b
    return value, (es / total - y) * inv_b


def softmax_terms(xp: Any, z: Array) -> tuple[Array, Array, Array]:
    """Per row of logits: (s = z - max_k z, e^s, Σ_k e^s as a column); softmax = e^s / Σ e^s and
    log-sum-exp(z) = max_k z + log Σ e^s."""
    s = z - xp.max(z, axis=1, keepdims=True)
    es = xp.exp(s)
    return s, es, xp.sum(es, axis=1, keepdims=True)


def mse(xp: Any, yhat: Array, y: Array) -> tuple[Array, Array]:
    """Mean squared error over all elements: value = mean((ŷ - y)²); d/dŷ = 2(ŷ - y)/(B·k)."""
    n = yhat.shape[0] * yhat.shape[1]
    d = yhat - y
    return xp.vecdot(xp.reshape(d, (-1,)), xp.reshape(d, (-1,))) * (1.0 / n), d * (2.0 / n)


def l2_penalty(xp: Any, weights: Array, lam: float) -> tuple[Array, Array]:
    """L2 on the (flat) weights: value = λ/2 Σ W², gradient = λ W."""
    return xp.vecdot(weights, weights) * (0.5 * lam), weights * lam


def one_hot(xp: Any, labels: Array, k: int, dtype: Any) -> Array:
    """(n,) integer labels in [0, k) -> (n, k) one-hot of ``dtype``."""
    classes = xp.arange(k, dtype=labels.dtype, device=device(labels))
    return xp.astype(labels[:, None] == classes[None, :], dtype)


class Loss(NamedTuple):
    """A loss: ``fn(xp, a, y) -> (value, d value / d a)``; ``head``: the output activation it is fused
    with (``a`` are then the logits) or None (``a`` are the outputs); ``kernel``: the name of an
    optional backend fast path computing the same (see ``backends.fast_path``)."""

    name: str
    fn: Callable[..., tuple[Array, Array]]
    head: str | None
    kernel: str | None


_BCE = Loss("bce", binary_cross_entropy, "sigmoid", "binary_cross_entropy")
_CE = Loss("cross_entropy", softmax_cross_entropy, "softmax", "softmax_cross_entropy")
_MSE = Loss("mse", mse, None, None)
LOSSES: dict[str, Loss] = {"bce": _BCE, "binary_cross_entropy": _BCE, "cross_entropy": _CE,
                           "softmax_cross_entropy": _CE, "mse": _MSE}
# The loss each output trains with by default.
DEFAULT_LOSS = {"sigmoid": "bce", "softmax": "cross_entropy", "identity": "mse"}


def get_loss(name: str) -> Loss:
    """A loss by name (one of ``LOSSES``)."""
    found = LOSSES.get(name) if isinstance(name, str) else None
    if found is None:
        raise ValueError(f"unknown loss {name!r}: use one of {sorted(LOSSES)}")
    return found
