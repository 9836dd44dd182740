"""Learning-rate schedules: the rate as a function of the step index (host floats)."""
from __future__ import annotations

import math
from typing import Any

from .. import _validate as check

__all__ = ["Schedule", "Constant", "StepDecay", "Exponential", "Cosine", "Warmup", "SCHEDULES", "make_schedule"]


class Schedule:
    """Learning rate as a function of the step index t = 0, 1, 2, ... (host floats)."""

    def __call__(self, t: int) -> float:
        raise NotImplementedError

    def config(self) -> dict:
        return dict(vars(self), name=type(self).__name__)


class Constant(Schedule):
    """lr(t) = lr."""

    def __init__(self, lr: float):
        self.lr = check.real("lr", lr, 0.0, low_open=True)

    def __call__(self, t: int) -> float:
        return self.lr


class StepDecay(Schedule):
    """lr(t) = lr · γ^⌊t / every⌋."""

    def __init__(self, lr: float, every: int, gamma: float = 0.1):
        self.lr, self.gamma = check.real("lr", lr, 0.0, low_open=True), check.real("gamma", gamma, 0.0)
        self.every = check.integer("step schedule 'every'", every, low=1)

    def __call__(self, t: int) -> float:
        return self.lr * self.gamma ** (t // self.every)


class Exponential(Schedule):
    """lr(t) = lr · γ^(t / every) (smooth decay by γ every ``every`` steps)."""

    def __init__(self, lr: float, gamma: float = 0.96, every: int = 1):
        self.lr, self.gamma = check.real("lr", lr, 0.0, low_open=True), check.real("gamma", gamma, 0.0)
        self.every = check.integer("exponential schedule 'every'", every, low=1)

    def __call__(self, t: int) -> float:
        return self.lr * self.gamma ** (t / self.every)


class Cosine(Schedule):
    """lr(t) = lr_min + ½(lr - lr_min)(1 + cos(π · min(t, T)/T)) over T = total steps."""

    def __init__(self, lr: float, total: int, lr_min: float = 0.0):
        self.lr, self.lr_min = check.real("lr", lr, 0.0, low_open=True), check.real("lr_min", lr_min, 0.0)
        self.total = check.integer("cosine schedule total steps", total, low=1)

    def __call__(self, t: int) -> float:
        frac = min(t, self.total) / self.total
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1.0 + math.cos(math.pi * frac))


class Warmup(Schedule):
    """Linear warm-up over ``steps`` steps, then ``after``: lr(t) = after(t)·(t+1)/steps for t < steps."""

    def __init__(self, after: Schedule, steps: int):
        self.after, self.steps = after, check.integer("warm-up steps", steps, low=0)

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
