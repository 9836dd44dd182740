"""Array-library backends for xpnet: the only code that imports numpy/cupy/torch/array_api_strict.

    >>> import backends
    >>> be = backends.get("torch:cpu")          # or get("torch", "cpu")
    >>> x = be.asarray([[1.0, 2.0]], dtype="float32")
    >>> be.xp.sum(x), be.to_numpy(x)

Specs are ``name`` or ``name:device``: "numpy", "strict", "strict:device1",
"torch:cpu", "torch:cuda", "cupy". ``available()`` lists those that work here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib import import_module
from typing import Any

from ._base import Backend, BackendUnavailable, to_numpy

__all__ = ["Backend", "BackendUnavailable", "available", "fast_path", "get", "to_numpy"]

NAMES = ("numpy", "strict", "torch", "cupy")
_ALIASES = {"array_api_strict": "strict", "array-api-strict": "strict"}
_CANDIDATES = ("numpy", "strict", "strict:device1", "torch:cpu", "cupy", "torch:cuda")


def get(name: str | Backend, device: str | None = None) -> Backend:
    """The backend for ``name`` ("numpy", "cupy", "torch", "strict" or "name:device").

    ``device`` is the library's device name ("cpu", "cuda", "cuda:1", "device1", ...);
    it may also be given inside ``name`` after a colon. A ``Backend`` is returned as is.
    Raises ``BackendUnavailable`` (one line, with the fix) if it cannot be used here.
    """
    if isinstance(name, Backend):
        return name
    base, _, dev = str(name).strip().partition(":")
    base = _ALIASES.get(base.lower(), base.lower())
    if dev and device is not None and str(device) != dev:
        raise ValueError(f"device given twice: {name!r} and device={device!r}")
    if base not in NAMES:
        raise BackendUnavailable(
            str(name),
            f"unknown backend name; valid names are {', '.join(NAMES)} "
            "(optionally with a device, e.g. torch:cuda or strict:device1)",
        )
    module = import_module(f"{__name__}._{base}")
    return module.make(dev or device)


@functools.cache
def _available() -> tuple[str, ...]:
    found = []
    for spec in _CANDIDATES:
        try:
            found.append(get(spec).spec)
        except Exception:  # missing library, no device, broken driver: not available
            continue
    return tuple(dict.fromkeys(found))


def available() -> list[str]:
    """Specs of the backends that import and have a working device here (cached).

    In this order, where present: numpy, strict, strict:device1, torch:cpu, cupy, torch:cuda.
    """
    return list(_available())


def fast_path(backend: Backend | str, name: str) -> Callable[..., Any] | None:
    """Backend-specific optional kernels looked up by name; None means "use the generic code".

    No fast paths are registered yet, so this always returns None.
    """
    return None
