"""Batch normalization over the batch axis."""
from __future__ import annotations

from typing import Any

from .. import _validate as check
from .layer import Buffer, Layer, Param, register

__all__ = ["BatchNorm1d"]

Array = Any


@register
class BatchNorm1d(Layer):
    """y = γ ⊙ x̂ + β, x̂ = (x - μ) / √(σ² + ε), per feature of (batch, n) inputs.

    Training: μ and σ² are the batch mean and biased variance, and the running statistics
    (buffers) move like torch's: m ← (1-α) m + α μ, v ← (1-α) v + α σ² B/(B-1) (α = momentum,
    B the batch size; a batch of one leaves them alone). Eval: μ, σ² are m and v.
    Backward with s = 1/√(σ² + ε): dβ = Σ_b dy, dγ = Σ_b dy ⊙ x̂, and in training
    dx = γ s ⊙ (dy - (dβ + x̂ ⊙ dγ) / B) (μ and σ² depend on x); in eval dx = γ s ⊙ dy.
    Statistics are computed in float32 when x is narrower (float16/bfloat16). γ starts at 1,
    β at 0; neither takes L2.
    """

    def __init__(self, n: int | None = None, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.n = None if n is None else check.integer("BatchNorm1d n", n, low=1)
        self.eps = check.real("BatchNorm1d eps", eps, 0.0, low_open=True)
        self.momentum = check.real("BatchNorm1d momentum", momentum, 0.0, 1.0)

    def build(self, n_in: int | None) -> int | None:
        if self.n is not None and n_in is not None and n_in != self.n:
            raise ValueError(f"BatchNorm1d({self.n}) receives {n_in} features: use BatchNorm1d({n_in}) "
                             f"(or BatchNorm1d() to take the width of the layer before)")
        self.n = self.n if n_in is None else n_in
        return self.n

    def params(self) -> list[Param]:
        if self.n is None:
            return []
        return [Param("gamma", (self.n,), "ones", decay=False), Param("beta", (self.n,), "zeros", decay=False)]

    def buffers(self) -> list[Buffer]:
        if self.n is None:
            return []
        return [Buffer("running_mean", (self.n,), "zeros"), Buffer("running_var", (self.n,), "ones")]

    def _wide(self, x: Array) -> Array:
        xp = self.xp
        return x if x.dtype in (xp.float32, xp.float64) else xp.astype(x, xp.float32)

    def _as(self, a: Array, dtype: Any) -> Array:
        return self.xp.astype(a, dtype, copy=False)

    def forward(self, x: Array, training: bool = False) -> tuple[Array, Any]:
        xp, xs = self.xp, self._wide(x)
        if training:
            mu = xp.mean(xs, axis=0)
            d = xs - mu
            var = xp.mean(d * d, axis=0)
            inv = 1.0 / xp.sqrt(var + self.eps)
            b = x.shape[0]
            if b > 1:  # in place on the network's buffer views
                a = self.momentum
                rm, rv = self.running_mean, self.running_var
                rm[...] = (1.0 - a) * rm + a * self._as(mu, rm.dtype)
                rv[...] = (1.0 - a) * rv + (a * b / (b - 1)) * self._as(var, rv.dtype)
        else:
            inv = 1.0 / xp.sqrt(self._as(self.running_var, xs.dtype) + self.eps)
            d = xs - self._as(self.running_mean, xs.dtype)
        xhat = d * inv
        y = xhat * self._as(self.gamma, xs.dtype) + self._as(self.beta, xs.dtype)
        return self._as(y, x.dtype), (xhat, inv, training)

    def backward(self, dy: Array, cache: Any) -> Array | None:
        xp = self.xp
        xhat, inv, training = cache
        dys = self._as(dy, xhat.dtype)
        dbeta = xp.sum(dys, axis=0)
        dgamma = xp.sum(dys * xhat, axis=0)
        self.grad_beta[...] = self._as(dbeta, self.grad_beta.dtype)
        self.grad_gamma[...] = self._as(dgamma, self.grad_gamma.dtype)
        if not self.need_dx:
            return None
        scale = self._as(self.gamma, xhat.dtype) * inv
        if training:
            dx = scale * (dys - (dbeta + xhat * dgamma) * (1.0 / dy.shape[0]))
        else:
            dx = scale * dys
        return self._as(dx, dy.dtype)

    def config(self) -> dict:
        return {"type": "BatchNorm1d", "n": self.n, "eps": self.eps, "momentum": self.momentum}

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v, default in (("eps", self.eps, 1e-5), ("momentum", self.momentum, 0.1))
                        if v != default)
        return f"BatchNorm1d({'' if self.n is None else self.n}{extra})"
