"""Shared test helpers: the backend matrix and array assertions that check namespace/device/dtype.

    from tests.helpers import all_backends, assert_close, assert_equal, to_numpy
"""

from __future__ import annotations

import collections
import functools
import os
from typing import Any

import array_api_compat
import numpy as np

import backends
from backends import Backend, to_numpy

__all__ = ["all_backends", "assert_close", "assert_equal", "gpu_available", "to_numpy"]

ENV_VAR = "XPNET_BACKENDS"


@functools.cache
def _matrix() -> tuple[Backend, ...]:
    requested = [s.strip() for s in os.environ.get(ENV_VAR, "").split(",") if s.strip()]
    specs = requested or backends.available()
    # get() raises BackendUnavailable for a requested spec that is unknown or missing here.
    return tuple(dict.fromkeys(backends.get(s) for s in specs))


def all_backends() -> list[Backend]:
    """The backends under test: ``backends.available()``, narrowed by $XPNET_BACKENDS.

    $XPNET_BACKENDS is comma-separated specs, e.g. ``numpy,strict:device1``.
    Raises ``backends.BackendUnavailable`` if a requested spec cannot be used here.
    """
    return list(_matrix())


def gpu_available() -> bool:
    """True if a GPU backend (cupy, torch:cuda) works on this machine."""
    return any(s.startswith(("cupy", "torch:cuda")) for s in backends.available())


def _default_rtol(dtype: np.dtype) -> float:
    if dtype.kind not in "fc":
        return 0.0  # integers and bools compare exactly
    bits = dtype.itemsize * 8 // (2 if dtype.kind == "c" else 1)
    return {16: 1e-3, 32: 1e-5}.get(bits, 1e-12)


def _check_meta(
    actual: Any, desired: Any, backend: Backend | str | None, check_dtype: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Check namespace, device, dtype and shape; return both as NumPy arrays."""
    if backend is not None:
        backend = backends.get(backend)
        xp = array_api_compat.array_namespace(actual)
        assert xp is backend.xp, (
            f"namespace: got {xp.__name__}, expected {backend.xp.__name__} for {backend.spec}"
        )
        dev = array_api_compat.device(actual)
        assert dev == backend.device, (
            f"device: got {dev!r}, expected {backend.device!r} for {backend.spec}"
        )
    a = to_numpy(actual)
    has_dtype = not isinstance(desired, (bool, int, float, complex, list, tuple))
    d = to_numpy(desired)
    if check_dtype and has_dtype:
        assert a.dtype == d.dtype, f"dtype: got {a.dtype}, expected {d.dtype}"
    assert a.shape == d.shape, f"shape: got {a.shape}, expected {d.shape}"
    return a, d


def assert_close(
    actual: Any,
    desired: Any,
    *,
    rtol: float | None = None,
    atol: float = 0.0,
    backend: Backend | str | None = None,
    check_dtype: bool = True,
) -> None:
    """Assert ``actual`` matches ``desired`` within tolerance, like SciPy's ``xp_assert_close``.

    With ``backend``, ``actual`` must come from ``backend.xp`` and live on ``backend.device``.
    Dtypes must match (unless ``check_dtype=False``, or ``desired`` is a Python
    scalar/list, which has no dtype of its own) and shapes must match exactly.
    ``rtol`` defaults by dtype: 1e-12 float64, 1e-5 float32, 1e-3 float16, exact for ints.
    ``desired`` may be an array of any backend, NumPy, a list or a scalar.
    """
    a, d = _check_meta(actual, desired, backend, check_dtype)
    if rtol is None:
        rtol = _default_rtol(a.dtype)
    np.testing.assert_allclose(a, d, rtol=rtol, atol=atol, equal_nan=True)


def assert_equal(
    actual: Any,
    desired: Any,
    *,
    backend: Backend | str | None = None,
    check_dtype: bool = True,
) -> None:
    """Assert exact equality, with the same namespace/device/dtype/shape checks as ``assert_close``.

    NaNs in the same places compare equal.
    """
    a, d = _check_meta(actual, desired, backend, check_dtype)
    np.testing.assert_array_equal(a, d)


def count_host_transfers(monkeypatch: Any, backend: Backend) -> collections.Counter:
    """A Counter (by kind) of the device-to-host transfers of array-api-strict arrays from now on, while
    ``monkeypatch`` holds: the Array's ``__bool__``, ``__float__``, ``__int__``, ``__index__``,
    ``__complex__``, ``__dlpack__``, ``__array__``, ``to_device`` to the CPU device, and the host-copy
    helpers (``backends.to_numpy``, ``strict_to_numpy``, the backend's ``to_numpy``). Calls nested
    inside a counted one are one transfer."""
    import array_api_strict as strict

    array = type(backend.xp.asarray([1.0], device=backend.device))
    counts: collections.Counter = collections.Counter()
    depth = [0]

    def counted(kind, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if depth[0] == 0:
                counts[kind] += 1
            depth[0] += 1
            try:
                return fn(*args, **kwargs)
            finally:
                depth[0] -= 1
        return wrapper

    for name in ("__bool__", "__float__", "__int__", "__index__", "__complex__", "__dlpack__", "__array__"):
        if hasattr(array, name):
            monkeypatch.setattr(array, name, counted(name, getattr(array, name)))
    cpu = strict.__array_namespace_info__().default_device()
    to_device = array.to_device

    def to_device_counted(self, device, /, stream=None):
        if device == cpu and self.device != cpu and depth[0] == 0:
            counts["to_device(cpu)"] += 1
        return to_device(self, device, stream=stream)

    monkeypatch.setattr(array, "to_device", to_device_counted)
    # the host-copy helpers, wherever they are bound (module functions and the backend's method)
    for owner in (backends, backends._base, backends._strict, type(backend)):
        for name in ("to_numpy", "strict_to_numpy"):
            fn = vars(owner).get(name)
            if callable(fn):
                label = f"{getattr(owner, '__name__', owner)}.{name}"
                monkeypatch.setattr(owner, name, counted(label, fn))
    return counts
