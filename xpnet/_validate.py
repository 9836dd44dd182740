"""Argument validation, declared once: every public entry point checks its arguments here.

Each checker returns the normalized value or raises ``ValueError`` with one line that names
the argument, what it must be, and what was given.
"""
from __future__ import annotations

import math
import numbers
import operator
from typing import Any, Iterable

__all__ = ["integer", "real", "choice", "boolean", "dropout_rate", "seed", "MAX_DROPOUT"]

# Dropout masks compare 16-bit uniforms with round(p·2¹⁶), so p must stay below 1 - 2⁻¹⁷.
MAX_DROPOUT = 1.0 - 2.0 ** -17


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if high is None:
        return "" if low is None else f"{'>' if low_open else '>='} {low:g}"
    if low is None:
        return f"{'<' if high_open else '<='} {high:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def integer(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int in [low, high] (bools are refused)."""
    try:
        v = operator.index(value)
    except TypeError:
        v = None
    if isinstance(value, bool) or v is None or (low is not None and v < low) or (high is not None and v > high):
        if low == 1 and high is None:
            what = "a positive integer"
        elif low == 0 and high is None:
            what = "an integer >= 0"
        else:
            what = f"an integer {_interval(low, high, False, False)}"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return v


def real(name: str, value: Any, low: float | None = None, high: float | None = None, *,
         low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float in the interval (open or closed at each end)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    v = float(value) if ok else math.nan
    if ok and hasattr(value, "shape") and getattr(value, "shape", ()) != ():  # a 1-element array is not a number
        ok = False
    if (not ok or not math.isfinite(v) or (low is not None and (v < low or (low_open and v == low)))
            or (high is not None and (v > high or (high_open and v == high)))):
        raise ValueError(f"{name} must be a finite number {_interval(low, high, low_open, high_open)}".rstrip()
                         + f", got {value!r}")
    return v


def choice(name: str, value: Any, options: Iterable[str]) -> str:
    """``value`` if it is one of ``options`` (strings)."""
    options = list(options)
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"unknown {name} {value!r}: use one of {options}")
    return value


def boolean(name: str, value: Any) -> bool:
    """``value`` as a bool (True/False, 0/1)."""
    if isinstance(value, bool) or (isinstance(value, numbers.Integral) and int(value) in (0, 1)):
        return bool(value)
    raise ValueError(f"{name} must be True or False, got {value!r}")


def dropout_rate(name: str, value: Any) -> float:
    """A dropout probability p in [0, 1 - 2⁻¹⁷) (see :data:`MAX_DROPOUT`)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not (0.0 <= float(value) < MAX_DROPOUT):
        raise ValueError(f"{name} must be a probability in [0, 1), got {value!r}")
    return float(value)


def seed(value: Any, name: str = "seed") -> int:
    """A random seed: a non-negative int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return int(value)
