"""array-api-strict backend: the reference namespace, with its simulated devices."""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

from . import _malloc
from ._base import Backend, BackendUnavailable, strict_to_numpy

_INSTALL = "Install it with: pip install array-api-strict"


def _device_str(dev: Any) -> str:
    """'device1' for ``array_api_strict.Device('device1')`` (the class has no public name)."""
    name = getattr(dev, "_device", None)
    return name if isinstance(name, str) else repr(dev).split("'")[1]


class StrictBackend(Backend):
    name = "strict"
    library = "array-api-strict"

    def is_native(self, x: Any) -> bool:
        return isinstance(x, self._array_type)

    def to_numpy(self, x: Any) -> np.ndarray:
        return strict_to_numpy(x) if self.is_native(x) else super().to_numpy(x)

    def versions(self) -> dict[str, str]:
        return {**super().versions(), "array_api_strict": self.version}

    def _describe_extra(self) -> str:
        return f"simulated device, NumPy {np.__version__}"


def make(device: Any = None) -> StrictBackend:
    _malloc.tune()  # reuse freed temporaries' pages between steps (see backends/_malloc.py)
    requested = "strict" if device is None else f"strict:{device}"
    try:
        import array_api_strict as xps
    except Exception as exc:
        reason = (
            "array-api-strict is not installed"
            if isinstance(exc, ImportError)
            else f"array-api-strict failed to import ({exc})"
        )
        raise BackendUnavailable(requested, f"{reason}. {_INSTALL}") from None

    info = xps.__array_namespace_info__()
    names = [_device_str(d) for d in info.devices()]
    if device is None:
        dev = info.default_device()
    elif isinstance(device, xps.Device):
        dev = device
    elif device in names:
        dev = xps.Device(device)
    else:
        raise BackendUnavailable(
            requested,
            f"array-api-strict has no device {device!r}; its devices are: {', '.join(names)}",
        )
    default = dev == info.default_device()
    dev_name = _device_str(dev)
    sample = xps.zeros(1, device=dev)
    backend = StrictBackend(
        spec="strict" if default else f"strict:{dev_name}",
        xp=array_api_compat.array_namespace(sample),
        device=array_api_compat.device(sample),
        device_name=dev_name,
        version=xps.__version__,
    )
    backend._array_type = type(sample)
    return backend
