"""What every metric shares: inputs checked and moved to the prediction's device, label encoding, one transfer."""
from __future__ import annotations

import math
from typing import Any, Sequence

import array_api_compat

import backends as _backends

from .._xp import Array, device, fetch, namespace

_AVERAGES = (None, "binary", "micro", "macro", "weighted")


class UndefinedMetricWarning(UserWarning):
    """A metric is ill-defined for the data (e.g. no predicted samples); the value used is named."""


# ---------------------------------------------------------------- inputs and transfer
def _target(*objs: Any) -> tuple[Any, Any]:
    """(namespace, device) of the first array-API array among ``objs`` (NumPy if none)."""
    for obj in objs:
        if array_api_compat.is_array_api_obj(obj):
            return namespace(obj), device(obj)
    be = _backends.get("numpy")
    return be.xp, be.device


def _on(xp: Any, dev: Any, obj: Any, name: str) -> Array:
    """``obj`` as an array of ``xp`` on ``dev`` (copied through the host if it lives elsewhere)."""
    if array_api_compat.is_array_api_obj(obj):
        try:
            if namespace(obj) is xp and device(obj) == dev:
                return obj
        except TypeError:
            pass
    try:
        return xp.asarray(_backends.to_numpy(obj), device=dev)
    except Exception as exc:  # noqa: BLE001 - one clear line
        raise ValueError(f"{name} could not be converted to an array: {exc}") from None


def _wide_float(xp: Any, dev: Any, dtype: Any = None) -> Any:
    """float64 where the device supports it (exact counts, accurate sums), else ``dtype``/float32."""
    if "float64" in xp.__array_namespace_info__().dtypes(device=dev, kind="real floating"):
        return xp.float64
    return dtype if dtype is not None else xp.float32


class _Checks:
    """Validity conditions evaluated on the device and read back with the results."""

    def __init__(self, xp: Any) -> None:
        self.xp, self.flags, self.errors = xp, [], []

    def add(self, ok: Array, error: Exception) -> None:
        """``ok``: 0-d bool that must be True, else ``error`` is raised after the transfer."""
        self.flags.append(self.xp.astype(ok, self.xp.int64))
        self.errors.append(error)

    def parts(self) -> list[Array]:
        return [self.xp.stack(self.flags)] if self.flags else []

    def settle(self) -> None:
        """Raise a failed check now (before reporting a later error it may have caused)."""
        if self.flags:
            self.raise_failed(fetch(self.xp, self.parts(), self.xp.int64))

    def raise_failed(self, fetched: list[list[Any]]) -> None:
        if self.flags:
            for ok, err in zip(fetched[-1], self.errors):
                if not ok:
                    raise err


def _n_samples(*arrays: Array) -> int:
    lengths = [int(a.shape[0]) for a in arrays]
    if len(set(lengths)) > 1:
        raise ValueError(f"Found input variables with inconsistent numbers of samples: {lengths}")
    if lengths[0] == 0:
        raise ValueError("Found empty input (0 samples): metrics need at least one sample")
    return lengths[0]


def _labels(xp: Any, dev: Any, y: Any, name: str, checks: _Checks, allow_2d: bool = False) -> Array:
    """Class labels as int64 (bool and integral floats accepted; others fail the checks)."""
    a = _on(xp, dev, y, name)
    if a.ndim == 2 and a.shape[1] == 1:
        a = xp.reshape(a, (-1,))
    if a.ndim != 1 and not (allow_2d and a.ndim == 2):
        raise ValueError(f"{name} must be a 1-D array of class labels, got shape {tuple(a.shape)}")
    if xp.isdtype(a.dtype, "bool") or xp.isdtype(a.dtype, "integral"):
        return xp.astype(a, xp.int64)
    if not xp.isdtype(a.dtype, "real floating"):
        raise ValueError(f"{name} must hold integer class labels, got dtype {a.dtype}")
    checks.add(xp.all(xp.isfinite(a)) & xp.all(a == xp.round(a)),
               ValueError(f"{name} must hold integer class labels (got non-integer or non-finite "
                          f"floats); threshold scores or take the argmax first"))
    return xp.astype(xp.where(xp.isfinite(a), a, 0.0), xp.int64)


def _floats(xp: Any, dev: Any, y: Any, name: str) -> Array:
    """A real floating array (integers and bools become float64 where supported)."""
    a = _on(xp, dev, y, name)
    if not xp.isdtype(a.dtype, "real floating"):
        if not (xp.isdtype(a.dtype, "integral") or xp.isdtype(a.dtype, "bool")):
            raise ValueError(f"{name} must hold real numbers, got dtype {a.dtype}")
        a = xp.astype(a, _wide_float(xp, dev))
    return a


def _int_list(xp: Any, dev: Any, labels: Any, name: str = "labels") -> Array:
    values = _backends.to_numpy(labels).reshape(-1).tolist()
    if not values:
        raise ValueError(f"'{name}' should contain at least one label.")
    try:
        ints = [int(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be integer class labels, got {values!r}") from None
    if ints != values:
        raise ValueError(f"{name} must be integer class labels, got {values!r}")
    return xp.asarray(ints, dtype=xp.int64, device=dev)


def _classes(xp: Any, *ys: Array) -> Array:
    """Sorted distinct labels of ``ys``."""
    return xp.sort(xp.unique_values(xp.concat(ys) if len(ys) > 1 else ys[0]))


def _encode(xp: Any, y: Array, labels: Array) -> Array:
    """Index of each y in ``labels`` (any order, distinct), or len(labels) if absent."""
    k = labels.shape[0]
    order = xp.argsort(labels)
    srt = xp.take(labels, order)
    pos = xp.clip(xp.searchsorted(srt, y), 0, k - 1)
    found = xp.take(srt, pos) == y
    return xp.where(found, xp.take(order, pos), k)


def _bincount(xp: Any, idx: Array, m: int) -> Array:
    """Counts of the values 0..m-1 in the int64 array ``idx`` (others ignored), via sort + searchsorted."""
    s = xp.sort(idx)
    r = xp.arange(m, dtype=s.dtype, device=device(s))
    return xp.searchsorted(s, r, side="right") - xp.searchsorted(s, r, side="left")


def _mean(values: Sequence[float], weights: Sequence[float] | None = None) -> float:
    if weights is None:
        return math.fsum(values) / len(values)
    return math.fsum(v * w for v, w in zip(values, weights)) / math.fsum(weights)


