"""What a training run records."""
from __future__ import annotations

from typing import Any

__all__ = ["History", "TrainingStopped"]


class History(dict):
    """What :func:`xpnet.fit` records. Keys (lists, one entry per epoch unless noted):

    ``epoch`` (the epoch's number, counted from 1), ``loss`` (train objective: batch-mean loss + L2,
    averaged over the epoch's samples), ``accuracy`` (train, from the training forwards, dropout
    active; None for regression), ``val_loss``, ``val_accuracy`` (None without validation), ``lr``
    (at the epoch's last step), ``time`` (seconds), ``step_loss`` (one per step), ``grad_norms``
    (per-Dense L2 norm of dL/dW at each epoch's last step, when recorded), ``diagnostics``
    (per-layer statistics of an epoch's last batch when asked for; None for the other epochs),
    ``best_epoch`` (its number, from 1), ``stopped_early`` (scalars). Attribute access works too (``history.loss``).
    """

    def __init__(self, saved: dict | None = None) -> None:
        super().__init__(epoch=[], loss=[], accuracy=[], val_loss=[], val_accuracy=[], lr=[], time=[],
                         step_loss=[], grad_norms=[], diagnostics=[], best_epoch=None, stopped_early=False)
        if saved:
            self.update(saved)

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class TrainingStopped(RuntimeError):
    """Raised by :func:`xpnet.fit` when training cannot go on (e.g. a non-finite loss)."""

    def __init__(self, message: str, history: History):
        super().__init__(message)
        self.history = history
