"""Optimizers, gradient clipping and learning-rate schedules.

Optimizers update one flat parameter vector ``p`` in place from its flat gradient
``g`` (the model keeps all parameters in one buffer), so a step costs a handful of
array operations whatever the number of layers. Scalars such as bias corrections
are Python floats computed on the host: no per-step device-to-host transfer.
Update rules follow PyTorch's definitions (so torch.optim is an exact oracle).
"""
from __future__ import annotations

import math
from typing import Any

from ._xp import Array, fast_path, namespace

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSProp", "clip_by_value", "clip_by_norm",
           "Schedule", "Constant", "StepDecay", "Exponential", "Cosine", "Warmup", "OPTIMIZERS",
           "make_optimizer", "make_schedule"]


def _check(name: str, value: float, low: float = 0.0, high: float = math.inf, strict_low: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    bad = not math.isfinite(v) or v > high or (v <= low if strict_low else v < low)
    if bad:
        rng = f"{'(' if strict_low else '['}{low}, {high}{']' if math.isfinite(high) else ')'}"
        raise ValueError(f"{name} must be in {rng}, got {value!r}")
    return v


class Optimizer:
    """Base class: ``step(params, grads)`` updates ``params`` in place; ``lr`` may be changed
    between steps (schedules do). ``t`` counts the steps taken; state arrays live in ``state``."""

    kernel: str | None = None  # name of an optional fused backend kernel for the update

    def __init__(self, lr: float):
        self.lr = _check("lr", lr, strict_low=True)
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
        if self.xp is None:
            self.xp = namespace(params)
            self._fused = fast_path(self.xp, self.kernel) if self.kernel else None
        self.t += 1
        self._update(params, grads)

    def _update(self, p: Array, g: Array) -> None:
        raise NotImplementedError

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
        self.momentum = _check("momentum", momentum, 0.0, 1.0)
        self.nesterov = bool(nesterov)
        if nesterov and self.momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0 (e.g. momentum=0.9)")

    def _update(self, p: Array, g: Array) -> None:
        if self.momentum == 0.0:
            p -= self.lr * g
            return
        buf = self.state.get("momentum")
        if buf is None:  # torch: the first buffer is g itself
            buf = self.state["momentum"] = g * 1.0
        else:
            buf *= self.momentum
            buf += g
        p -= self.lr * (g + self.momentum * buf) if self.nesterov else self.lr * buf


class Adam(Optimizer):
    """Adam with bias correction: m ← β₁m + (1-β₁)g; v ← β₂v + (1-β₂)g²;
    p ← p - lr/(1-β₁ᵗ) · m / (√v/√(1-β₂ᵗ) + ε)  (computed as lr·√(1-β₂ᵗ)/(1-β₁ᵗ) · m/(√v + ε√(1-β₂ᵗ)))."""

    kernel = "adam"

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        super().__init__(lr)
        self.beta1 = _check("beta1", beta1, 0.0, 1.0)
        self.beta2 = _check("beta2", beta2, 0.0, 1.0)
        self.eps = _check("eps", eps, 0.0, strict_low=True)
        if self.beta1 >= 1.0 or self.beta2 >= 1.0:
            raise ValueError("beta1 and beta2 must be < 1")

    def _update(self, p: Array, g: Array) -> None:
        m, v = self._buffer("m", p), self._buffer("v", p)
        root_bc2 = math.sqrt(1.0 - self.beta2 ** self.t)
        step, eps = self.lr * root_bc2 / (1.0 - self.beta1 ** self.t), self.eps * root_bc2
        if self._fused is not None:
            self._fused(p, g, m, v, self.beta1, self.beta2, step, eps)
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
        self.weight_decay = _check("weight_decay", weight_decay)

    def _update(self, p: Array, g: Array) -> None:
        if self.weight_decay:
            p *= 1.0 - self.lr * self.weight_decay
        super()._update(p, g)


class RMSProp(Optimizer):
    """RMSProp: v ← ρv + (1-ρ)g²; p ← p - lr·g/(√v + ε) (torch.optim.RMSprop, alpha=ρ)."""

    def __init__(self, lr: float = 1e-2, rho: float = 0.99, eps: float = 1e-8):
        super().__init__(lr)
        self.rho = _check("rho", rho, 0.0, 1.0)
        self.eps = _check("eps", eps, 0.0, strict_low=True)

    def _update(self, p: Array, g: Array) -> None:
        v = self._buffer("v", p)
        v *= self.rho
        v += (1.0 - self.rho) * (g * g)
        denom = self.xp.sqrt(v)
        denom += self.eps
        p -= self.lr * (g / denom)


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


# ---------------------------------------------------------------- clipping
def clip_by_value(g: Array, c: float) -> Array:
    """Clamp every gradient entry to [-c, c] (in place where possible)."""
    c = _check("clip value", c, strict_low=True)
    g[...] = namespace(g).clip(g, -c, c)
    return g


def clip_by_norm(g: Array, max_norm: float) -> Array:
    """Rescale g so that its global L2 norm is at most ``max_norm``: g ← g·min(1, c/‖g‖).

    The scale stays on the device (no host synchronization)."""
    xp = namespace(g)
    c = _check("clip norm", max_norm, strict_low=True)
    norm = xp.sqrt(xp.vecdot(g, g))
    g *= c / xp.where(norm > c, norm, c)  # = min(1, c/‖g‖), never divides by zero
    return g


# ---------------------------------------------------------------- schedules
class Schedule:
    """Learning rate as a function of the step index t = 0, 1, 2, ... (host floats)."""

    def __call__(self, t: int) -> float:
        raise NotImplementedError

    def config(self) -> dict:
        return dict(vars(self), name=type(self).__name__)


class Constant(Schedule):
    """lr(t) = lr."""

    def __init__(self, lr: float):
        self.lr = _check("lr", lr, strict_low=True)

    def __call__(self, t: int) -> float:
        return self.lr


class StepDecay(Schedule):
    """lr(t) = lr · γ^⌊t / every⌋."""

    def __init__(self, lr: float, every: int, gamma: float = 0.1):
        self.lr, self.every, self.gamma = _check("lr", lr, strict_low=True), int(every), _check("gamma", gamma)
        if self.every < 1:
            raise ValueError(f"step schedule 'every' must be >= 1, got {every!r}")

    def __call__(self, t: int) -> float:
        return self.lr * self.gamma ** (t // self.every)


class Exponential(Schedule):
    """lr(t) = lr · γ^(t / every) (smooth decay by γ every ``every`` steps)."""

    def __init__(self, lr: float, gamma: float = 0.96, every: int = 1):
        self.lr, self.gamma, self.every = _check("lr", lr, strict_low=True), _check("gamma", gamma), int(every)
        if self.every < 1:
            raise ValueError(f"exponential schedule 'every' must be >= 1, got {every!r}")

    def __call__(self, t: int) -> float:
        return self.lr * self.gamma ** (t / self.every)


class Cosine(Schedule):
    """lr(t) = lr_min + ½(lr - lr_min)(1 + cos(π · min(t, T)/T)) over T = total steps."""

    def __init__(self, lr: float, total: int, lr_min: float = 0.0):
        self.lr, self.total, self.lr_min = _check("lr", lr, strict_low=True), int(total), _check("lr_min", lr_min)
        if self.total < 1:
            raise ValueError(f"cosine schedule needs total >= 1 steps, got {total!r}")

    def __call__(self, t: int) -> float:
        frac = min(t, self.total) / self.total
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1.0 + math.cos(math.pi * frac))


class Warmup(Schedule):
    """Linear warm-up over ``steps`` steps, then ``after``: lr(t) = after(t)·(t+1)/steps for t < steps."""

    def __init__(self, after: Schedule, steps: int):
        self.after, self.steps = after, int(steps)
        if self.steps < 0:
            raise ValueError(f"warm-up steps must be >= 0, got {steps!r}")

    def __call__(self, t: int) -> float:
        base = self.after(t)
        return base * (t + 1) / self.steps if t < self.steps else base

    def config(self) -> dict:
        return {"name": "Warmup", "steps": self.steps, "after": self.after.config()}


SCHEDULES = ("constant", "step", "exponential", "cosine")


def make_schedule(name: str, lr: float, total_steps: int, warmup: int = 0, **kwargs: Any) -> Schedule:
    """A schedule by name (constant, step, exponential, cosine), optionally with linear warm-up.

    step: decay by ``gamma`` (0.1) every ``every`` steps (default total/3);
    exponential: reach ``gamma`` (0.01) of lr at the end by default; cosine: to ``lr_min`` (0).
    """
    key = str(name).lower()
    if key == "constant":
        sched: Schedule = Constant(lr)
    elif key == "step":
        sched = StepDecay(lr, kwargs.get("every", max(1, total_steps // 3)), kwargs.get("gamma", 0.1))
    elif key == "exponential":
        sched = Exponential(lr, kwargs.get("gamma", 0.01), kwargs.get("every", max(1, total_steps)))
    elif key == "cosine":
        sched = Cosine(lr, max(1, total_steps), kwargs.get("lr_min", 0.0))
    else:
        raise ValueError(f"unknown schedule {name!r}: use one of {list(SCHEDULES)}")
    return Warmup(sched, warmup) if warmup else sched
