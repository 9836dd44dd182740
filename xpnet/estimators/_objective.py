"""scikit-learn's MLP objective (with sample weights, L2 and its SGD rule) on xpnet's training loop.

Objective (identical to scikit-learn's). For a mini-batch with rows i, targets y_i, sample
weights w_i (all 1 without ``sample_weight``) and S = Σ_i w_i (the batch size without
weights), the logits z_i are scored by

* softmax (multiclass):  L = (1/S) Σ_i w_i [logsumexp(z_i) - y_i·z_i]
* logistic (binary, multilabel; k output units):
  L = (1/S) Σ_i w_i Σ_j [softplus(z_ij) - y_ij z_ij]  (summed over the k labels, as
  scikit-learn's ``binary_log_loss``; xpnet's ``bce`` would average over them)
* identity (regression, k outputs): L = (1/(2kS)) Σ_i w_i ||z_i - y_i||²
* poisson (regression, ``loss="poisson"``; prediction ŷ = exp(z), scikit-learn's half Poisson
  deviance without its constant): L = (1/S) Σ_i w_i Σ_j [y_ij log y_ij - y_ij z_ij - y_ij + e^{z_ij}]
  (0 log 0 = 0)

and the gradient fed to backprop is, in all four cases, ∂L/∂z_i = w_i (p_i - y_i) / S with
p_i = softmax(z_i), σ(z_i), z_i or e^{z_i}. (For regression with k > 1 outputs this is what
scikit-learn uses too: its reported loss averages over the outputs, its gradient does not. L-BFGS
needs a loss whose gradient this is: ``mean_over_outputs=False`` drops the 1/k.)
The weights travel as an extra last column of Y, so the training loop shuffles and slices
them with the targets.

L2 (``alpha``). scikit-learn adds (alpha/2)·||W||²/S to every batch loss (W: all weights, no
biases), gradient alpha·W/S. The training loop adds (λ/2)·ΣW² with λ = ``l2(rows)`` evaluated
after the objective, so :meth:`SklearnLoss.l2` gives λ = alpha/rows, or alpha/S (0 for a batch
of zero weights) from the batch just scored, on the device.
"""
from __future__ import annotations

import math
from typing import Any

from ..nn.losses import sigmoid_terms, softmax_terms
from ..optim import Optimizer

__all__ = ["SklearnLoss", "SklearnSGD"]

Array = Any


class SklearnLoss:
    """``loss(z, Y) -> (L, ∂L/∂z)`` for ``kind`` "softmax", "sigmoid", "identity" or "poisson" with k
    outputs; with ``weighted``, Y's last column holds the sample weights (see the module docstring)."""

    def __init__(self, xp: Any, kind: str, k: int, weighted: bool, alpha: float, mean_over_outputs: bool = True):
        self.xp, self.kind, self.k, self.weighted, self.alpha = xp, kind, k, weighted, alpha
        self.mean_over_outputs = mean_over_outputs
        self.weight_sum: Array = None  # S of the last batch scored (weighted)

    def __call__(self, z: Array, Y: Array) -> tuple[Array, Array]:
        xp, k = self.xp, self.k
        if z.dtype != Y.dtype:  # logits of a float16/bfloat16 forward: the loss is computed in float32
            z = xp.astype(z, Y.dtype)
        if self.weighted:
            w, Y = Y[:, k:], Y[:, :k]
            s = self.weight_sum = xp.sum(w)
            scale = w / xp.where(s > 0.0, s, 1.0)  # a batch of zero weights contributes nothing
        else:
            scale = 1.0 / float(z.shape[0])
        if self.kind == "softmax":
            sh, es, total = softmax_terms(xp, z)
            per_row = xp.log(total) - xp.sum(Y * sh, axis=1, keepdims=True)
            p = es / total
        elif self.kind == "sigmoid":
            terms, p = sigmoid_terms(xp, z, Y)
            per_row = xp.sum(terms, axis=1, keepdims=True)
        elif self.kind == "poisson":
            p = xp.exp(z)
            y_log_y = xp.where(Y == 0.0, 0.0, Y * xp.log(xp.where(Y == 0.0, 1.0, Y)))
            per_row = xp.sum(y_log_y - Y * z - Y + p, axis=1, keepdims=True)
        else:
            d = z - Y
            per_row = xp.sum(d * d, axis=1, keepdims=True) * (0.5 / k if self.mean_over_outputs else 0.5)
            p = z
        return xp.sum(per_row * scale), (p - Y) * scale

    def l2(self, rows: int) -> Array | float:
        """λ of the batch just scored: alpha / S (alpha / rows without weights)."""
        if self.weighted:
            s = self.weight_sum
            return self.alpha / self.xp.where(s > 0.0, s, math.inf)
        return self.alpha / rows


class SklearnSGD(Optimizer):
    """scikit-learn's SGD: v ← momentum·v - lr·g; p ← p + v, or with Nesterov's momentum
    p ← p + momentum·v - lr·g (v the updated velocity). Without momentum: p ← p - lr·g.
    (torch's rule, :class:`xpnet.SGD`, scales the velocity by the current lr instead.)"""

    def __init__(self, lr: float, momentum: float = 0.9, nesterov: bool = True):
        super().__init__(lr)
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    @property
    def learning_rate(self) -> float:
        """The current ``lr`` under the name scikit-learn's SGDOptimizer gives it."""
        return self.lr

    def update(self, p: Array, g: Array, s: tuple[Any, ...], fused: Any = None) -> None:
        lr, = s
        if self.momentum == 0.0:
            p -= lr * g
            return
        v = self._buffer("velocity", p)
        v *= self.momentum
        v -= lr * g
        if self.nesterov:
            p += self.momentum * v - lr * g
        else:
            p += v
