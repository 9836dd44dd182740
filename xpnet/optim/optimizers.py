"""Optimizers: in-place updates of one flat parameter vector.

Optimizers update one flat parameter vector ``p`` in place from its flat gradient
``g`` (the model keeps all parameters in one buffer), so a step costs a handful of
array operations whatever the number of layers. The step's scalars (learning rate, bias
corrections: :meth:`Optimizer.scalars`) are computed on the host in float64; :meth:`Optimizer.update`
takes them as Python floats or, in a captured CUDA graph, as 0-d device arrays read from a
per-epoch table (the same values rounded once to the parameters' dtype, so the same numbers).
Update rules follow PyTorch's definitions (so torch.optim is an exact oracle).
"""
from __future__ import annotations

import math
from typing import Any

from .. import _validate as check
from .._xp import Array, fast_path, namespace

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSProp", "OPTIMIZERS", "make_optimizer"]


class Optimizer:
    """Base class: ``step(params, grads)`` updates ``params`` in place; ``lr`` may be changed
    between steps (schedules do). ``t`` counts the steps taken; state arrays live in ``state``.
    Optimizers that re-evaluate the loss (``needs_closure``, e.g. :class:`~xpnet.optim.LBFGS`) are
    called ``step(params, grads, closure, loss)`` instead."""

    kernel: str | None = None  # name of an optional fused backend kernel for the update
    needs_closure = False

    def __init__(self, lr: float):
        self.lr = check.real("lr", lr, 0.0, low_open=True)
        self.t = 0
        self.state: dict[str, Array] = {}
        self.xp: Any = None  # bound to the parameters' namespace at the first step

    def _buffer(self, name: str, like: Array) -> Array:
        buf = self.state.get(name)
        if buf is None or buf.shape != like.shape:
            buf = self.state[name] = like * 0.0
        return buf

    def step(self, params: Array, grads: Array) -> None:
        """One in-place update of the flat ``params`` from the flat ``grads``."""
        self.bind(params)
        self.t += 1
        self.update(params, grads, self.scalars(self.t, self.lr), self._fused)

    def bind(self, params: Array) -> None:
        """Bind to the parameters' namespace (and its fused kernel) before the first update."""
        if self.xp is None:
            self.xp = namespace(params)
            self._fused = fast_path(self.xp, self.kernel) if self.kernel else None

    @property
    def device_fused(self) -> Any:
        """The fused kernel if it also takes the scalars as 0-d device arrays (``device_scalars``), else None."""
        fused = getattr(self, "_fused", None)
        return fused if getattr(fused, "device_scalars", False) else None

    def scalars(self, t: int, lr: float) -> tuple[float, ...]:
        """The scalars of step ``t`` (counted from 1) at learning rate ``lr`` (host floats)."""
        return (lr,)

    def update(self, p: Array, g: Array, s: tuple[Any, ...], fused: Any = None) -> None:
        """The in-place update of ``p`` from ``g`` with the step's scalars ``s`` (:meth:`scalars`; host floats,
        or 0-d device arrays, which the fused kernel ``fused`` does not take)."""
        raise NotImplementedError

    def state_names(self) -> tuple[str, ...] | None:
        """The ``state`` arrays this optimizer holds once it has taken a step (None: not declared)."""
        return None

    def config(self) -> dict:
        """Hyperparameters (JSON-serializable)."""
        return {k: v for k, v in vars(self).items() if k not in ("state", "t", "xp", "_fused")} | \
            {"name": type(self).__name__}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """SGD, optionally with momentum μ (buf ← μ buf + g; p ← p - lr·buf) or Nesterov
    (p ← p - lr·(g + μ buf)), as torch.optim.SGD (dampening 0)."""

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False):
        super().__init__(lr)
        self.momentum = check.real("momentum", momentum, 0.0, 1.0)
        self.nesterov = bool(nesterov)
        if nesterov and self.momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0 (e.g. momentum=0.9)")

    def state_names(self) -> tuple[str, ...]:
        return ("momentum",) if self.momentum else ()

    def update(self, p: Array, g: Array, s: tuple[Any, ...], fused: Any = None) -> None:
        lr, = s
        if self.momentum == 0.0:
            p -= lr * g
            return
        buf = self.state.get("momentum")
        if buf is None:  # torch: the first buffer is g itself
            buf = self.state["momentum"] = g * 1.0
        else:
            buf *= self.momentum
            buf += g
        p -= lr * (g + self.momentum * buf) if self.nesterov else lr * buf


class Adam(Optimizer):
    """Adam with bias correction: m ← β₁m + (1-β₁)g; v ← β₂v + (1-β₂)g²;
    p ← p - lr/(1-β₁ᵗ) · m / (√v/√(1-β₂ᵗ) + ε)  (computed as lr·√(1-β₂ᵗ)/(1-β₁ᵗ) · m/(√v + ε√(1-β₂ᵗ)))."""

    kernel = "adam"

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        super().__init__(lr)
        self.beta1 = check.real("beta1", beta1, 0.0, 1.0, high_open=True)
        self.beta2 = check.real("beta2", beta2, 0.0, 1.0, high_open=True)
        self.eps = check.real("eps", eps, 0.0, low_open=True)

    def state_names(self) -> tuple[str, ...]:
        return ("m", "v")

    def scalars(self, t: int, lr: float) -> tuple[float, ...]:
        """(lr·√(1-β₂ᵗ)/(1-β₁ᵗ), ε√(1-β₂ᵗ))."""
        root_bc2 = math.sqrt(1.0 - self.beta2 ** t)
        return lr * root_bc2 / (1.0 - self.beta1 ** t), self.eps * root_bc2

    def update(self, p: Array, g: Array, s: tuple[Any, ...], fused: Any = None) -> None:
        m, v = self._buffer("m", p), self._buffer("v", p)
        step, eps = s[-2:]
        if fused is not None:
            fused(p, g, m, v, self.beta1, self.beta2, step, eps)
            return
        m *= self.beta1
        m += (1.0 - self.beta1) * g
        v *= self.beta2
        v += (1.0 - self.beta2) * (g * g)
        # torch's p -= lr/bc1 · m / (√v/√bc2 + ε), with √bc2 folded into the scalars.
        denom = self.xp.sqrt(v)
        denom += eps
        update = m / denom
        update *= step
        p -= update


class AdamW(Adam):
    """Adam with decoupled weight decay: p ← p(1 - lr·wd) before the Adam step (torch.optim.AdamW;
    applied to every parameter, biases included, as torch does by default)."""

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 1e-2):
        super().__init__(lr, beta1, beta2, eps)
        self.weight_decay = check.real("weight_decay", weight_decay, 0.0)

    def scalars(self, t: int, lr: float) -> tuple[float, ...]:
        """(1 - lr·wd, then Adam's scalars)."""
        return (1.0 - lr * self.weight_decay,) + super().scalars(t, lr)

    def update(self, p: Array, g: Array, s: tuple[Any, ...], fused: Any = None) -> None:
        if self.weight_decay:
            p *= s[0]
        super().update(p, g, s, fused)


class RMSProp(Optimizer):
    """RMSProp: v ← ρv + (1-ρ)g²; p ← p - lr·g/(√v + ε) (torch.optim.RMSprop, alpha=ρ)."""

    def __init__(self, lr: float = 1e-2, rho: float = 0.99, eps: float = 1e-8):
        super().__init__(lr)
        self.rho = check.real("rho", rho, 0.0, 1.0)
        self.eps = check.real("eps", eps, 0.0, low_open=True)

    def state_names(self) -> tuple[str, ...]:
        return ("v",)

    def update(self, p: Array, g: Array, s: tuple[Any, ...], fused: Any = None) -> None:
        lr, = s
        v = self._buffer("v", p)
        v *= self.rho
        v += (1.0 - self.rho) * (g * g)
        denom = self.xp.sqrt(v)
        denom += self.eps
        p -= lr * (g / denom)


OPTIMIZERS = {"sgd": SGD, "momentum": SGD, "nesterov": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSProp}


def make_optimizer(name: str, lr: float, **kwargs: Any) -> Optimizer:
    """An optimizer by name: sgd, momentum (μ=0.9), nesterov (μ=0.9), adam, adamw, rmsprop."""
    key = str(name).lower()
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}: use one of {sorted(OPTIMIZERS)}")
    if key in ("momentum", "nesterov"):
        kwargs.setdefault("momentum", 0.9)
        kwargs["nesterov"] = key == "nesterov"
    return OPTIMIZERS[key](lr=lr, **kwargs)
