"""The `Backend` base class, the `BackendUnavailable` error and array conversion helpers."""

from __future__ import annotations

import contextlib
import platform
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

# Low-precision float dtypes (not in the array API standard): "float16" (NumPy, CuPy, PyTorch), "bfloat16" (PyTorch).
_LOW_PRECISION = ("float16", "bfloat16")
# Dtype names a caller may ask for (validated against the device's own list).
_DTYPE_NAMES = (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float32", "float64", "complex64", "complex128",
)


class BackendUnavailable(RuntimeError):
    """A backend is not installed, has no working device, or was misnamed.

    ``str(err)`` is one line: which backend, what is missing, and how to fix it.
    """

    def __init__(self, backend: str, reason: str) -> None:
        self.backend = backend
        self.reason = " ".join(str(reason).split())  # always a single line
        super().__init__(f"backend {backend!r} is not available: {self.reason}")


class CaptureFailed(RuntimeError):
    """A step could not be recorded into a CUDA graph (one line: why); the step itself ran."""


def one_line(exc: BaseException, limit: int = 200) -> str:
    """``"ErrorType: message"`` squeezed onto one line (for BackendUnavailable reasons)."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def dtype_key(dtype: Any) -> str:
    """Canonical dtype name ("float32", ...) of a string, NumPy dtype or any library's dtype."""
    if isinstance(dtype, str):
        return dtype
    try:
        return np.dtype(dtype).name  # NumPy and CuPy dtypes, numpy scalar types
    except TypeError:
        return str(dtype).rsplit(".", 1)[-1]  # torch.float32, array_api_strict.float32


def _is_strict_array(x: Any) -> bool:
    return type(x).__module__.startswith("array_api_strict")


def strict_to_numpy(x: Any) -> np.ndarray:
    """Host view of an array-api-strict array on any of its devices.

    ``numpy.asarray`` refuses arrays that are not on CPU_DEVICE, so read the wrapped
    NumPy array (falling back to DLPack after moving the array to CPU_DEVICE).
    """
    inner = getattr(x, "_array", None)
    if isinstance(inner, np.ndarray):
        return inner
    import array_api_strict

    cpu = array_api_strict.__array_namespace_info__().default_device()
    return np.from_dlpack(x.to_device(cpu))


def to_numpy(x: Any) -> np.ndarray:
    """Copy (or view) any supported array on the host as a ``numpy.ndarray``.

    Handles NumPy, CuPy, PyTorch (any device, grad or not), array-api-strict (any
    device), other DLPack-capable CPU arrays, Python scalars and nested lists.
    The result may share memory with ``x`` when ``x`` already lives on the CPU.
    """
    if isinstance(x, np.ndarray):
        return x
    if array_api_compat.is_numpy_array(x):  # NumPy scalars
        return np.asarray(x)
    if array_api_compat.is_cupy_array(x):
        return x.get()
    if array_api_compat.is_torch_array(x):
        t = x.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        return t.resolve_conj().resolve_neg().numpy()
    if _is_strict_array(x):
        return strict_to_numpy(x)
    if isinstance(x, (bool, int, float, complex, list, tuple)):
        return np.asarray(x)
    if hasattr(x, "__dlpack__"):
        return np.from_dlpack(x)
    return np.asarray(x)


class Backend:
    """One array library on one device.

    Attributes
    ----------
    name : "numpy", "cupy", "torch" or "strict".
    spec : canonical ``name[:device]`` string, e.g. "numpy", "torch:cpu", "strict:device1".
    xp : the array-API namespace (``array_api_compat.array_namespace`` of its arrays).
    device : the library's device object; pass it as ``device=`` to ``xp`` creation
        functions; equals ``array_api_compat.device(x)`` for arrays made here.
    device_name : human-readable device name ("CPU", "NVIDIA H100 80GB HBM3", ...).
    version : the array library's version string.
    """

    name: str = ""
    library: str = ""  # display name used by describe()

    def __init__(
        self, *, spec: str, xp: ModuleType, device: Any, device_name: str, version: str
    ) -> None:
        self.spec = spec
        self.version = version
        self.xp = xp
        self.device = device
        self.device_name = device_name
        info = xp.__array_namespace_info__()
        supported = info.dtypes(device=device)
        self._dtypes = {k: getattr(xp, k) for k in _DTYPE_NAMES if k in supported}
        for name in _LOW_PRECISION:  # outside the standard: offered where the library has them on this device
            dt = getattr(xp, name, None)
            try:
                xp.zeros(1, dtype=dt, device=device)
            except Exception:  # noqa: BLE001 - absent or unusable here
                continue
            if dt is not None:
                self._dtypes[name] = dt

    # -- conversion ----------------------------------------------------------------------
    def is_native(self, x: Any) -> bool:
        """True if ``x`` is an array of this backend's library (on any device)."""
        raise NotImplementedError

    def asarray(self, obj: Any, dtype: Any = None) -> Any:
        """Make an array on this backend's device from NumPy, lists/scalars or any array.

        ``dtype`` may be None (keep/infer), a name such as "float32", or a dtype object.
        Python lists and scalars are inferred as NumPy would (floats -> float64,
        ints -> int64), identically on every backend. Like ``xp.asarray``, the result
        may share memory with ``obj`` when no copy is needed.
        """
        dt = None if dtype is None else self.dtype(dtype)
        return self.xp.asarray(self._prepare(obj), dtype=dt, device=self.device)

    def _prepare(self, obj: Any) -> Any:
        """Turn ``obj`` into something this library's ``asarray`` takes directly."""
        if self.is_native(obj) or isinstance(obj, np.ndarray):
            return obj
        return to_numpy(obj)

    def to_numpy(self, x: Any) -> np.ndarray:
        """Host copy of ``x`` as a ``numpy.ndarray`` (may share memory for CPU arrays)."""
        return to_numpy(x)

    def dtype(self, name: Any) -> Any:
        """The ``xp`` dtype for a name like "float32" (or any library's dtype object)."""
        if not isinstance(name, str):
            for dt in self._dtypes.values():
                if dt is name:
                    return dt
        key = dtype_key(name)
        try:
            return self._dtypes[key]
        except KeyError:
            raise ValueError(
                f"dtype {name!r} is not supported by backend {self.spec!r}; "
                f"choose one of: {', '.join(self._dtypes)}"
            ) from None

    def overflow_allowed(self) -> Any:
        """A context in which overflow to inf/NaN is expected and silent (float16 loss scaling skips such
        steps); only NumPy warns about it."""
        return contextlib.nullcontext()

    # -- CUDA graphs ---------------------------------------------------------------------
    @property
    def can_capture(self) -> bool:
        """Whether :meth:`capture` records CUDA graphs here (CuPy, torch on CUDA; off with XPNET_CUDA_GRAPHS=0)."""
        return False

    def capture(self, step: Any) -> Any:
        """Run ``step`` once, record it into a CUDA graph and return the replay function (see
        ``backends/_graphs.py``); raises ``CaptureFailed`` where that is not possible."""
        raise CaptureFailed(f"backend {self.spec!r} has no CUDA graphs")

    # -- device & reporting --------------------------------------------------------------
    def synchronize(self) -> None:
        """Block until queued device work is done (no-op on CPU backends)."""

    def versions(self) -> dict[str, str]:
        """Versions of the libraries this backend runs on."""
        return {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "array_api_compat": array_api_compat.__version__,
        }

    def _describe_extra(self) -> str:
        return ""

    def describe(self) -> str:
        """One line: library, version and device, e.g. "numpy 2.4.1 on CPU (OpenBLAS 0.3.31)"."""
        extra = self._describe_extra()
        text = f"{self.library} {self.version} on {self.device_name}"
        return f"{text} ({extra})" if extra else text

    @property
    def on_gpu(self) -> bool:
        """True for backends whose arrays live on a GPU."""
        return False

    def __repr__(self) -> str:
        return f"Backend({self.spec!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Backend) and other.spec == self.spec

    def __hash__(self) -> int:
        return hash(("Backend", self.spec))
