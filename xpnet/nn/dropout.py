"""Inverted dropout."""
from __future__ import annotations

import math
from typing import Any, Callable

from .. import _validate as check
from .. import random as xrandom
from .._xp import fast_path
from .layer import Layer, register

__all__ = ["Dropout"]

Array = Any


@register
class Dropout(Layer):
    """y = x ⊙ m / (1 - p) with m ~ Bernoulli(1 - p) drawn in forward; dx = dy ⊙ m / (1 - p).

    Identity when not training or p = 0. The mask of the c-th training forward is a pure
    function of (seed, stream, c) (:func:`xpnet.random.dropout_keep`), so it is the same on
    every backend; ``counter`` (host int, checkpointed) counts the training forwards. p is
    quantized to multiples of 2⁻¹⁶ and the scale uses the quantized p. The stream is the
    layer's ordinal among the network's Dropout layers.

    ``rows``: None, or ``(first, total)`` while this process holds rows ``first ..`` of a batch of
    ``total`` rows (a data-parallel rank's share): the mask is then those rows of the whole
    batch's mask, so every rank applies exactly the single-process run's mask.

    ``key_source``: None, or a function returning this forward's key words as 0-d device words (a row
    of :func:`xpnet.random.key_words`); the mask is then drawn from them (the same bits as from
    ``counter``) and ``counter`` is left to the caller (a captured CUDA graph, :mod:`xpnet.train.graphed`).
    """

    stream_kind = "dropout"

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = check.dropout_rate("dropout rate", p)
        self.counter = 0
        self.rows: tuple[int, int] | None = None
        self.key_source: Callable[[], tuple[Array, Array]] | None = None
        self.scale = 1.0 / (1.0 - xrandom.dropout_threshold(self.p) / 65536.0)

    @property
    def rate(self) -> float:
        return self.p

    def bind(self, ctx: Any, values: dict, grads: dict, buffers: dict) -> None:
        super().bind(ctx, values, grads, buffers)
        self._fused = fast_path(ctx.xp, "dropout_mask")

    def mask(self, shape: tuple[int, ...], dtype: Any, counter: int) -> Array:
        """The scaled mask m / (1 - p) of the ``counter``-th training forward (or of ``key_source``'s words)."""
        threshold = xrandom.dropout_threshold(self.p)
        part = () if self.rows is None else _part(shape, *self.rows)
        on_device = self.key_source is not None
        k = self.key_source() if on_device else xrandom.key(self.ctx.seed, self.stream, counter)
        if self._fused is not None and (not on_device or getattr(self._fused, "device_scalars", False)):
            return self._fused(shape, dtype, *k, threshold, self.scale, *part)
        keep = xrandom.dropout_keep_keyed(self.xp, shape, self.p, k, self.ctx.device, *part)
        return self.xp.astype(keep, dtype) * self.scale

    def forward(self, x: Array, training: bool = False) -> tuple[Array, Array | None]:
        if not training or self.p == 0.0:
            return x, None
        m = self.mask(tuple(x.shape), x.dtype, self.counter)
        if self.key_source is None:
            self.counter += 1
        return x * m, m

    def skip(self) -> None:
        """Advance the counter as a training forward would, without data (a data-parallel rank whose
        share of a small last batch is empty)."""
        if self.p != 0.0:
            self.counter += 1

    def backward(self, dy: Array, m: Array | None) -> Array | None:
        if not self.need_dx:
            return None
        return dy if m is None else dy * m

    def config(self) -> dict:
        return {"type": "Dropout", "p": self.p}


def _part(shape: tuple[int, ...], first: int, total: int) -> tuple[int, int]:
    """(offset, total) in elements of rows ``first ..`` of a batch of ``total`` rows shaped like ``shape``."""
    width = math.prod(shape[1:])
    return first * width, total * width
