"""Dynamic loss scaling for float16 training (the semantics of torch's GradScaler)."""
from __future__ import annotations

from typing import Any

import backends as _backends

from .. import _validate as check
from .._xp import namespace

__all__ = ["LossScaler"]


class LossScaler:
    """The loss is multiplied by ``scale`` before backward so small float16 gradients do not underflow;
    the gradients are divided by it as they land in the float32 master buffer.

    After each backward, :meth:`update` reads one flag from the device (the only per-step transfer
    of float16 training, as in torch's GradScaler): if any gradient is inf/NaN the step is skipped
    (the gradients are zeroed) and ``scale`` is multiplied by ``backoff`` (½); after ``growth_interval``
    finite steps in a row it is multiplied by ``growth`` (2). ``skipped`` counts the skipped steps.
    """

    def __init__(self, init_scale: float = 2.0 ** 16, growth: float = 2.0, backoff: float = 0.5,
                 growth_interval: int = 2000):
        self.scale = check.real("init_scale", init_scale, 0.0, low_open=True)
        self.growth = check.real("growth", growth, 1.0, low_open=True)
        self.backoff = check.real("backoff", backoff, 0.0, 1.0, low_open=True, high_open=True)
        self.growth_interval = check.integer("growth_interval", growth_interval, low=1)
        self.clean, self.skipped = 0, 0

    def update(self, grads: Any) -> bool:
        """True if the step may be taken (every gradient finite); adjusts the scale either way."""
        xp = namespace(grads)
        finite = bool(_backends.to_numpy(xp.all(xp.isfinite(grads))))
        if finite:
            self.clean += 1
            if self.clean == self.growth_interval:
                self.scale, self.clean = self.scale * self.growth, 0
            return True
        grads[...] = 0.0
        self.scale, self.clean, self.skipped = self.scale * self.backoff, 0, self.skipped + 1
        return False

    def state(self) -> dict:
        """What a checkpoint keeps to resume exactly."""
        return {"scale": self.scale, "clean": self.clean, "skipped": self.skipped}

    def load_state(self, state: dict) -> None:
        self.scale = check.real("loss scale", state["scale"], 0.0, low_open=True)
        self.clean = check.integer("loss scaler clean steps", state["clean"], low=0)
        self.skipped = check.integer("loss scaler skipped steps", state["skipped"], low=0)

    def __repr__(self) -> str:
        return f"LossScaler(scale={self.scale:g}, skipped={self.skipped})"
