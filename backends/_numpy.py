"""NumPy backend (through ``array_api_compat.numpy``)."""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

from . import _malloc
from ._base import Backend, BackendUnavailable


def _blas() -> str:
    """BLAS NumPy was built against, e.g. "OpenBLAS 0.3.31" ("" if unknown)."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:
        return ""
    name = str(blas.get("name", "")).replace("scipy-openblas", "OpenBLAS")
    version = ".".join(str(blas.get("version", "")).split(".")[:3])
    return f"{name} {version}".strip()


class NumpyBackend(Backend):
    name = "numpy"
    library = "numpy"

    def is_native(self, x: Any) -> bool:
        return isinstance(x, np.ndarray)

    def _describe_extra(self) -> str:
        return _blas()

    def overflow_allowed(self) -> Any:
        return np.errstate(over="ignore", invalid="ignore")


def make(device: Any = None) -> NumpyBackend:
    if device not in (None, "cpu"):
        raise BackendUnavailable(
            f"numpy:{device}", "NumPy has only the 'cpu' device. Use --backend numpy"
        )
    _malloc.tune()  # reuse freed temporaries' pages between steps (see backends/_malloc.py)
    sample = np.zeros(1)
    return NumpyBackend(
        spec="numpy",
        xp=array_api_compat.array_namespace(sample),
        device=array_api_compat.device(sample),
        device_name="CPU",
        version=np.__version__,
    )
