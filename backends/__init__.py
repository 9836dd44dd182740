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
import os
from collections.abc import Callable
from importlib import import_module
from typing import Any

import array_api_compat

from ._base import Backend, BackendUnavailable, CaptureFailed, to_numpy
from ._sparse import SparseRows, is_sparse, sparse_rows
from ._blocks import BlockSource, block_source, is_dask, random_state
from ._comm import communicator
from ._graphs import graphs_enabled
from ._threads import set_threads

__all__ = ["Backend", "BackendUnavailable", "BlockSource", "CaptureFailed", "SparseRows", "available", "block_source",
           "communicator", "graphs_enabled", "is_dask", "random_state", "fast_path", "get", "is_sparse",
           "set_threads", "sparse_rows", "to_numpy"]

NAMES = ("numpy", "strict", "torch", "cupy")
_ALIASES = {"array_api_strict": "strict", "array-api-strict": "strict"}
_CANDIDATES = ("numpy", "strict", "strict:device1", "torch:cpu", "cupy", "torch:cuda")


# Why a Dask array namespace cannot be a backend (array_api_compat offers one).
_NO_VIEWS = ("a Dask array namespace cannot train a network: xpnet updates the parameters in place through views "
             "of one flat buffer, and a Dask array has no view semantics (a slice is a new lazy array, so every "
             "update would change nothing). Keep the compute on numpy, cupy or torch and give the Dask array to "
             "xpnet.fit as X: it streams it to the device block by block")


def get(name: str | Backend, device: str | None = None) -> Backend:
    """The backend for ``name`` ("numpy", "cupy", "torch", "strict" or "name:device").

    ``device`` is the library's device name ("cpu", "cuda", "cuda:1", "device1", ...);
    it may also be given inside ``name`` after a colon. A ``Backend`` is returned as is.
    Raises ``BackendUnavailable`` (one line, with the fix) if it cannot be used here.
    """
    if isinstance(name, Backend):
        return name
    if "dask" in str(getattr(name, "__name__", "")):  # a namespace module, e.g. array_api_compat.dask.array
        raise BackendUnavailable(name.__name__, _NO_VIEWS)
    base, _, dev = str(name).strip().partition(":")
    base = _ALIASES.get(base.lower(), base.lower())
    if base.split(".")[0] == "dask":
        raise BackendUnavailable(str(name), _NO_VIEWS)
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


def fast_path(target: Any, name: str) -> Callable[..., Any] | None:
    """An optional backend-specific kernel by name, or None ("use the portable code").

    ``target`` is a Backend, a spec string or an array namespace. NumPy has
    ``dense_backward`` (BLAS straight into the gradient buffer), ``adam`` (no
    temporaries), ``relu_forward`` (a boolean mask), ``binary_cross_entropy`` and
    ``softmax_cross_entropy`` (in place) and ``normal`` (the random normals in
    cache-sized blocks), all bit-identical to the portable code;
    CuPy has fused kernels in ``backends/_cupy_kernels.py`` (adam, relu_forward,
    dropout_mask, binary_cross_entropy, softmax_cross_entropy, dense_backward).
    A kernel with the attribute ``device_scalars = True`` also takes its per-step scalars
    (Adam's step and eps, the dropout key words) as 0-d device arrays, as a CUDA graph's
    recorded step passes them. Setting the environment variable ``XPNET_FAST_PATHS=0``
    turns them all off (the parity tests compare both ways).
    """
    if os.environ.get("XPNET_FAST_PATHS", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    if isinstance(target, Backend):
        library = target.name
    elif isinstance(target, str):
        library = target.split(":")[0].lower()
    elif array_api_compat.is_cupy_namespace(target):
        library = "cupy"
    elif array_api_compat.is_numpy_namespace(target):
        library = "numpy"
    else:
        return None
    try:
        if library == "cupy":
            from ._cupy_kernels import KERNELS
        elif library == "numpy":
            from ._numpy_kernels import KERNELS
        else:
            return None
    except ImportError:  # the library is not installed: nothing to accelerate
        return None
    return KERNELS.get(name)
