"""Small helpers over the array-API namespace (no concrete array library is imported here)."""
from __future__ import annotations

from typing import Any, Sequence

import array_api_compat

import backends

Array = Any


def namespace(*arrays: Array) -> Any:
    """The array-API namespace of ``arrays`` (``array_api_compat.array_namespace``)."""
    return array_api_compat.array_namespace(*arrays)


def device(x: Array) -> Any:
    """The device ``x`` lives on."""
    return array_api_compat.device(x)


def is_sparse(x: Any) -> bool:
    """Whether ``x`` is sparse input (a SciPy sparse matrix, or one held on a device: ``backends.SparseRows``)."""
    return backends.is_sparse(x)


def has_unsigned_arithmetic(xp: Any) -> bool:
    """Whether ``xp`` supports +, *, >> and comparisons on uint32 on every device.

    PyTorch lacks most uint32 kernels, so the random generator uses int32 there
    (two's complement wrap-around gives the same bits).
    """
    return not array_api_compat.is_torch_namespace(xp)


def fast_path(xp: Any, name: str) -> Any:
    """The backend's optional fused kernel ``name`` for namespace ``xp``, or None.

    Fast paths live in ``backends/`` and compute the same math as the portable code
    here (parity-tested); set XPNET_FAST_PATHS=0 to use the portable code everywhere.
    """
    return backends.fast_path(xp, name)


def fetch(xp: Any, parts: Sequence[Array], dtype: Any) -> list[list[Any]]:
    """One device-to-host transfer of several arrays (cast to ``dtype``, flattened): a list per part."""
    flat = [xp.reshape(xp.astype(p, dtype), (-1,)) for p in parts]
    host = backends.to_numpy(xp.concat(flat)).tolist()
    out, i = [], 0
    for f in flat:
        out.append(host[i:i + f.shape[0]])
        i += f.shape[0]
    return out
