"""Gradient clipping on the flat gradient, in place and without host synchronization."""
from __future__ import annotations

from .. import _validate as check
from .._xp import Array, namespace

__all__ = ["clip_by_value", "clip_by_norm"]


def clip_by_value(g: Array, c: float) -> Array:
    """Clamp every gradient entry to [-c, c] (in place where possible)."""
    c = check.real("clip value", c, 0.0, low_open=True)
    g[...] = namespace(g).clip(g, -c, c)
    return g


def clip_by_norm(g: Array, max_norm: float) -> Array:
    """Rescale g so that its global L2 norm is at most ``max_norm``: g ← g·min(1, c/‖g‖).

    The scale stays on the device (no host synchronization)."""
    xp = namespace(g)
    c = check.real("clip norm", max_norm, 0.0, low_open=True)
    norm = xp.sqrt(xp.vecdot(g, g))
    g *= c / xp.where(norm > c, norm, c)  # = min(1, c/‖g‖), never divides by zero
    return g
