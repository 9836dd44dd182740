"""Initializers of parameters and buffers, by name.

For a weight of shape (fan_in, fan_out):
he_normal N(0, 2/fan_in); he_uniform U(±√(6/fan_in)); glorot_normal N(0, 2/(fan_in+fan_out));
glorot_uniform U(±√(6/(fan_in+fan_out))). "zeros" and "ones" draw nothing.
Draws come from :mod:`xpnet.random` with key (seed, stream, 0), so they are bit-identical on
every backend.
"""
from __future__ import annotations

import math
from typing import Any

from .. import random as xrandom

__all__ = ["INITS", "WEIGHT_INITS", "canonical", "initial_value"]

Array = Any

WEIGHT_INITS = ("he_normal", "he_uniform", "glorot_normal", "glorot_uniform")
# Accepted names -> canonical names.
INITS = {"he_normal": "he_normal", "he_uniform": "he_uniform", "glorot_normal": "glorot_normal",
         "glorot_uniform": "glorot_uniform", "xavier_normal": "glorot_normal",
         "xavier_uniform": "glorot_uniform", "he": "he_normal", "xavier": "glorot_normal",
         "glorot": "glorot_normal", "zeros": "zeros", "ones": "ones"}


def canonical(name: Any, weights_only: bool = True) -> str:
    """The canonical initializer name for ``name`` (ValueError naming the choices if unknown)."""
    found = INITS.get(name) if isinstance(name, str) else None
    if found is None or (weights_only and found not in WEIGHT_INITS):
        names = sorted(k for k, v in INITS.items() if v in WEIGHT_INITS or not weights_only)
        raise ValueError(f"unknown init {name!r}: use one of {names}")
    return found


def initial_value(name: str, xp: Any, shape: tuple[int, ...], seed: int, stream: int | None, dtype: Any,
                  device: Any) -> Array | None:
    """The initial array for initializer ``name``, or None for "zeros" (buffers start zeroed)."""
    if name == "zeros":
        return None
    if name == "ones":
        return xp.ones(shape, dtype=dtype, device=device)
    fan_in, fan_out = shape[0], shape[-1]
    if name == "he_normal":
        return xrandom.normal(xp, shape, seed, stream, std=math.sqrt(2.0 / fan_in), dtype=dtype, device=device)
    if name == "glorot_normal":
        return xrandom.normal(xp, shape, seed, stream, std=math.sqrt(2.0 / (fan_in + fan_out)),
                              dtype=dtype, device=device)
    if name == "he_uniform":
        lim = math.sqrt(6.0 / fan_in)
    elif name == "glorot_uniform":
        lim = math.sqrt(6.0 / (fan_in + fan_out))
    else:
        raise ValueError(f"unknown init {name!r}: use one of {sorted(INITS)}")
    return xrandom.uniform(xp, shape, seed, stream, low=-lim, high=lim, dtype=dtype, device=device)
