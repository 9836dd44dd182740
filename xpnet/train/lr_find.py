"""The learning-rate finder: one short sweep of exponentially growing learning rates.

Step i of the sweep trains one mini-batch with lr_i = start · (end/start)^(i/(steps-1)) and
records its loss L_i. The curve is smoothed by a bias-corrected exponential moving average,
a_i = β a_{i-1} + (1-β) L_i, S_i = a_i / (1 - β^(i+1)), and the sweep stops early once S_i
exceeds ``diverge`` × min S (or is not finite): the loss has exploded.

Suggestion: the learning rate where the smoothed loss falls fastest, i.e. the minimum of
dS/d(log lr) (central differences), taken over the steps before the minimum of S and after the
first tenth of the sweep (while the average warms up) — "just before the loss starts increasing
sharply", with a margin. The network, its buffers and dropout
counters, and the optimizer's state, step count and learning rate are put back afterwards, bit
for bit. The loss of each step crosses to the host as it comes (one small transfer a step).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .. import _validate as check
from ..nn import Network, Objective
from ..optim import Adam, Optimizer
from .loop import Trainer

__all__ = ["lr_find", "LRFinderResult"]


@dataclass
class LRFinderResult:
    """``lrs`` and ``losses`` (raw) and ``smoothed`` per step; ``suggestion`` (see the module rule);
    ``stopped_early``: the sweep ended because the loss exploded."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float
    stopped_early: bool
    rule: str = field(default="steepest descent of the smoothed loss before its minimum")

    def __str__(self) -> str:
        end = "stopped early: the loss exploded" if self.stopped_early else "the sweep ran to the end"
        return (f"lr_find: {len(self.lrs)} steps from {self.lrs[0]:.3g} to {self.lrs[-1]:.3g} ({end}); "
                f"suggested learning rate {self.suggestion:.3g} ({self.rule})")


def _suggest(lrs: list[float], smoothed: list[float], skip: int) -> float:
    finite = [i for i, s in enumerate(smoothed) if math.isfinite(s)]
    lowest = min(finite, key=lambda i: smoothed[i])
    first = max(1, min(skip, lowest - 1))
    if lowest - first < 1:
        return lrs[lowest]
    logs = [math.log(lr) for lr in lrs]
    slope = {i: (smoothed[i + 1] - smoothed[i - 1]) / (logs[i + 1] - logs[i - 1]) for i in range(first, lowest)}
    return lrs[min(slope, key=slope.__getitem__)]


def lr_find(model: Network, X: Any, y: Any, *, start: float = 1e-7, end: float = 1.0, steps: int = 100,
            optimizer: Optimizer | None = None, loss: str | None = None, l2: float = 0.0, batch_size: int = 32,
            smoothing: float = 0.9, diverge: float = 4.0, seed: int | None = None) -> LRFinderResult:
    """Sweep the learning rate from ``start`` to ``end`` over ``steps`` mini-batches of ``model`` on (X, y)
    with ``optimizer`` (default Adam); returns the curve and a suggested rate (see the module docstring).
    ``model`` and ``optimizer`` are left exactly as they were."""
    start, end = check.real("start", start, 0.0, low_open=True), check.real("end", end, 0.0, low_open=True)
    if end <= start:
        raise ValueError(f"lr_find needs end > start, got start={start:g}, end={end:g}")
    steps = check.integer("steps", steps, low=3)
    smoothing = check.real("smoothing", smoothing, 0.0, 1.0, high_open=True)
    diverge = check.real("diverge", diverge, 1.0, low_open=True)
    optimizer = Adam(lr=start) if optimizer is None else optimizer
    if not isinstance(optimizer, Optimizer):
        raise ValueError(f"optimizer must be an xpnet optimizer, got {optimizer!r}")
    Xd, Yd = model.as_input(X), model.targets(y)
    saved = (optimizer.t, optimizer.lr, {k: v * 1.0 for k, v in optimizer.state.items()}, optimizer.xp)
    params, t0 = model.copy_params(), optimizer.t
    lrs, raw, smooth = [], [], []
    average = 0.0

    def schedule(t: int) -> float:
        return start * (end / start) ** ((t - t0) / (steps - 1))

    def on_step(value: Any) -> bool:
        nonlocal average
        lrs.append(optimizer.lr)
        raw.append(float(model.backend.to_numpy(value)))
        average = smoothing * average + (1.0 - smoothing) * raw[-1]
        smooth.append(average / (1.0 - smoothing ** len(raw)))
        best = min((s for s in smooth if math.isfinite(s)), default=math.inf)
        exploded = not math.isfinite(smooth[-1]) or smooth[-1] > diverge * best
        return exploded or len(raw) >= steps

    batch = min(check.integer("batch_size", batch_size, low=1), Xd.shape[0])
    trainer = Trainer(model, optimizer, Objective(model, loss), batch_size=batch,
                      seed=model.seed if seed is None else check.seed(seed), l2=check.real("l2", l2, 0.0),
                      schedule=schedule, track_accuracy=False, on_step=on_step)
    try:
        with model.frozen_state():
            trainer.run(Xd, Yd, epochs=math.ceil(steps / math.ceil(Xd.shape[0] / batch)))
    finally:
        model.set_params(params)
        optimizer.t, optimizer.lr, optimizer.state, optimizer.xp = saved
    stopped = len(raw) < steps or not math.isfinite(smooth[-1]) or smooth[-1] > diverge * min(
        (s for s in smooth if math.isfinite(s)), default=math.inf)
    return LRFinderResult(lrs, raw, smooth, _suggest(lrs, smooth, steps // 10), stopped)
