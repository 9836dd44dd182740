"""Argument validation, declared once: every public entry point checks its arguments here.

Each checker returns the normalized value or raises ``ValueError`` with one line that names
the argument, what it must be, and what was given.
"""
from __future__ import annotations

import math
import numbers
import operator
import os
from typing import Any, Iterable

__all__ = ["integer", "real", "choice", "boolean", "dropout_rate", "seed", "MAX_DROPOUT", "memory_limit",
           "allocation", "byte_count", "learning_rate"]

# Dropout masks compare 16-bit uniforms with round(p·2¹⁶), so p must stay below 1 - 2⁻¹⁷.
MAX_DROPOUT = 1.0 - 2.0 ** -17


def interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    """An interval in words: "> 0", "in [0, 1)", ... (empty when unbounded)."""
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
            what = f"an integer {interval(low, high, False, False)}"
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
        raise ValueError(f"{name} must be a finite number {interval(low, high, low_open, high_open)}".rstrip()
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


# ---------------------------------------------------------------------------------------- resources
MEMORY_ENV = "XPNET_MEMORY_LIMIT"
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def byte_count(n: int) -> str:
    """``n`` bytes for a message: "3.6 TiB", "512 MiB", "10 bytes"."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def memory_limit() -> tuple[int, str]:
    """(the most bytes one allocation plan may take, where that number comes from): $XPNET_MEMORY_LIMIT
    (bytes, or with a K/M/G/T suffix), else the memory of this machine (or of its cgroup, if lower)."""
    text = os.environ.get(MEMORY_ENV, "").strip().upper().removesuffix("B").removesuffix("I")
    if text:
        unit = text[-1] if text[-1] in _UNITS else ""
        try:
            value = float(text[:len(text) - len(unit)])
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"${MEMORY_ENV} must be a number of bytes (e.g. 8G), got {os.environ[MEMORY_ENV]!r}")
        return int(value * _UNITS[unit]), f"${MEMORY_ENV}"
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not POSIX: no cap of our own
        total = 2**50
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as f:
            total = min(total, int(f.read().strip()))
    except (OSError, ValueError):  # no cgroup v2 limit ("max") or not Linux
        pass
    return total, "this machine's memory"


def allocation(what: str, n_bytes: int, fix: str) -> None:
    """Refuse, before allocating, a plan of ``n_bytes`` above :func:`memory_limit` (one line naming it)."""
    limit, source = memory_limit()
    if n_bytes > limit:
        raise ValueError(f"{what} needs about {byte_count(n_bytes)} ({n_bytes:,} bytes), more than the "
                         f"{byte_count(limit)} of {source} (set ${MEMORY_ENV} to change the limit): {fix}")


def learning_rate(schedule: Any, step: int, value: Any) -> float:
    """The rate ``schedule(step)`` gave, if it is a finite number >= 0 (a schedule may end at 0)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok and math.isfinite(float(value)) and float(value) >= 0.0:
        return float(value)
    name = type(schedule).__name__ if not hasattr(schedule, "__qualname__") else schedule.__qualname__
    raise ValueError(f"the learning-rate schedule {name} gave {value!r} at step {step}: a learning rate must be "
                     f"a finite number >= 0 (fix the schedule)")
