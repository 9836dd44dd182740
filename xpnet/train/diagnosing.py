"""The diagnostics callback: per-layer statistics of an epoch's last batch, and warnings."""
from __future__ import annotations

from typing import Any

from .. import diagnostics as _diag
from .callbacks import Callback

__all__ = ["Diagnostics"]


class Diagnostics(Callback):
    """Every ``every`` epochs, :func:`xpnet.diagnostics.batch_stats` of the epoch's last batch (one extra
    forward/backward that changes nothing) into ``history["diagnostics"]`` (None for other epochs),
    and :func:`xpnet.diagnostics.check`'s warnings, once per layer and kind."""

    def __init__(self, every: int, objective: Any, l2: float):
        self.every, self.objective, self.l2 = every, objective, l2
        self.warned: set = set()

    def on_train_begin(self, info: dict) -> None:
        self.model, self.history, self.trainer = info["model"], info["history"], info["trainer"]
        recorded = self.history["diagnostics"]  # a resumed run that recorded none before: one None per epoch
        recorded.extend([None] * (len(self.history["epoch"]) - len(recorded)))

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        stats = None
        if epoch % self.every == 0:
            xb, yb = self.trainer.last_batch
            stats = _diag.batch_stats(self.model, self.objective, xb, yb, self.l2)
            _diag.check(stats, epoch=epoch, seen=self.warned)
        self.history["diagnostics"].append(stats)
