"""Regression metrics: MSE, RMSE, MAE, R²."""
from __future__ import annotations

import math
import warnings
from typing import Any

import backends as _backends

from .._xp import Array, fetch
from ._inputs import (
    UndefinedMetricWarning,
    _floats,
    _mean,
    _n_samples,
    _target,
    _wide_float,
)

__all__ = ["mean_squared_error", "root_mean_squared_error", "mean_absolute_error", "r2_score"]


def _regression(y_true: Any, y_pred: Any) -> tuple[Any, Array, Array]:
    """(xp, T, P) as 2-D float arrays (float64 where the device has it) of equal shape."""
    xp, dev = _target(y_pred, y_true)
    P = _floats(xp, dev, y_pred, "y_pred")
    T = _floats(xp, dev, y_true, "y_true")
    wide = _wide_float(xp, dev, xp.result_type(T.dtype, P.dtype))
    T, P = (xp.astype(a if a.ndim == 2 else xp.reshape(a, (-1, 1)), wide) for a in (T, P))
    if T.ndim != 2 or P.ndim != 2 or T.shape[1] != P.shape[1]:
        raise ValueError(f"y_true and y_pred have different number of output ({T.shape[1]}!={P.shape[1]})")
    _n_samples(T, P)
    return xp, T, P


def _multioutput(values: list[float], multioutput: Any, weights: list[float] | None = None) -> Any:
    if isinstance(multioutput, str):
        if multioutput == "raw_values":
            return values
        if multioutput == "uniform_average":
            return _mean(values)
        if multioutput == "variance_weighted" and weights is not None:
            return _mean(values, weights) if any(w != 0 for w in weights) else _mean(values)
        raise ValueError(f"unknown multioutput {multioutput!r}: use 'raw_values', 'uniform_average'"
                         + (" or 'variance_weighted'" if weights is not None else "") + " or output weights")
    w = [float(v) for v in _backends.to_numpy(multioutput).reshape(-1).tolist()]
    if len(w) != len(values):
        raise ValueError(f"There must be equally many custom weights ({len(w)}) as outputs ({len(values)}).")
    return _mean(values, w)


def _per_output(xp: Any, T: Array, P: Array, what: str) -> list[float]:
    d = T - P
    err = xp.mean(d * d if what == "mse" else xp.abs(d), axis=0)
    got = fetch(xp, [err, xp.astype(xp.all(xp.isfinite(d)), err.dtype)], err.dtype)
    if not got[1][0]:
        raise ValueError("y_true or y_pred contains NaN or infinity")
    return got[0]


def mean_squared_error(y_true: Any, y_pred: Any, *, multioutput: Any = "uniform_average") -> Any:
    """mean((y_true - y_pred)²) per output, then averaged (``multioutput``: "uniform_average",
    "raw_values" (a list) or output weights)."""
    xp, T, P = _regression(y_true, y_pred)
    return _multioutput(_per_output(xp, T, P, "mse"), multioutput)


def root_mean_squared_error(y_true: Any, y_pred: Any, *, multioutput: Any = "uniform_average") -> Any:
    """sqrt(MSE) per output, then averaged like :func:`mean_squared_error`."""
    xp, T, P = _regression(y_true, y_pred)
    return _multioutput([math.sqrt(v) for v in _per_output(xp, T, P, "mse")], multioutput)


def mean_absolute_error(y_true: Any, y_pred: Any, *, multioutput: Any = "uniform_average") -> Any:
    """mean(|y_true - y_pred|) per output, then averaged like :func:`mean_squared_error`."""
    xp, T, P = _regression(y_true, y_pred)
    return _multioutput(_per_output(xp, T, P, "mae"), multioutput)


def r2_score(y_true: Any, y_pred: Any, *, multioutput: Any = "uniform_average", force_finite: bool = True) -> Any:
    """Coefficient of determination 1 - Σ(y - ŷ)² / Σ(y - ȳ)² per output, then averaged
    ("uniform_average", "variance_weighted", "raw_values" or output weights).

    Fewer than two samples: NaN with an UndefinedMetricWarning. Constant y_true: 1.0 if
    predicted exactly, else 0.0 with ``force_finite=True`` (NaN / -inf without).
    """
    xp, T, P = _regression(y_true, y_pred)
    if T.shape[0] < 2:
        warnings.warn("R^2 score is not well-defined with less than two samples.", UndefinedMetricWarning,
                      stacklevel=2)
        return math.nan
    c = T - T[:1, :]  # shifted by the first sample: a constant y_true gives exactly zero variance
    d, c = T - P, c - xp.mean(c, axis=0)
    num, den = xp.sum(d * d, axis=0), xp.sum(c * c, axis=0)
    finite = xp.astype(xp.all(xp.isfinite(d)), num.dtype)
    got = fetch(xp, [num, den, finite], num.dtype)
    if not got[2][0]:
        raise ValueError("y_true or y_pred contains NaN or infinity")
    scores = []
    for a, b in zip(got[0], got[1]):
        if not force_finite:
            scores.append(1.0 - a / b if b != 0 else (math.nan if a == 0 else -math.inf))
        elif a == 0:
            scores.append(1.0)
        else:
            scores.append(1.0 - a / b if b != 0 else 0.0)
    return _multioutput(scores, multioutput, weights=got[1])
