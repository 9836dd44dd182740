"""CuPy backend (through ``array_api_compat.cupy``) on one CUDA device."""

from __future__ import annotations

from typing import Any

from . import _graphs
from ._base import Backend, BackendUnavailable, one_line

_INSTALL = (
    'Install it with: pip install "xpnet[cupy-cuda12x]" (or "xpnet[cupy-cuda13x]" for CUDA 13)'
)
_NO_GPU = "Use --backend numpy, or run on a machine with an NVIDIA GPU"
_KDL_CUDA = 2  # DLPack device type of CUDA memory


def _cuda_version(v: int) -> str:
    """12080 -> "12.8"."""
    return f"{v // 1000}.{(v % 1000) // 10}"


class CupyBackend(Backend):
    name = "cupy"
    library = "cupy"

    def is_native(self, x: Any) -> bool:
        return isinstance(x, self._cupy.ndarray)

    def _prepare(self, obj: Any) -> Any:
        if not self.is_native(obj):
            try:
                on_cuda = obj.__dlpack_device__()[0] == _KDL_CUDA
            except Exception:
                on_cuda = False
            if on_cuda:  # e.g. a torch CUDA tensor: GPU to GPU, no host round trip
                with self.device:
                    return self._cupy.from_dlpack(obj)
        return super()._prepare(obj)

    @property
    def on_gpu(self) -> bool:
        return True

    def synchronize(self) -> None:
        self.device.synchronize()

    @property
    def can_capture(self) -> bool:
        return _graphs.graphs_enabled()

    def capture(self, step: Any) -> Any:
        with self.device:
            return _graphs.capture_cupy(self._cupy, step)

    def versions(self) -> dict[str, str]:
        rt = self._cupy.cuda.runtime
        return {
            **super().versions(),
            "cupy": self.version,
            "cuda_runtime": _cuda_version(rt.runtimeGetVersion()),
            "cuda_driver": _cuda_version(rt.driverGetVersion()),
        }

    def _describe_extra(self) -> str:
        return f"CUDA {_cuda_version(self._cupy.cuda.runtime.runtimeGetVersion())}"


def _parse_index(device: Any, requested: str) -> int | None:
    """None (current device) for None/"cuda"/"gpu", N for N, "N", "cuda:N", "gpu:N"."""
    if device is None:
        return None
    text = str(device).strip().lower()
    for prefix in ("cuda", "gpu"):
        if text == prefix:
            return None
        if text.startswith(prefix + ":"):
            text = text[len(prefix) + 1 :]
    if text.isdigit():
        return int(text)
    raise BackendUnavailable(
        requested, f"unknown cupy device {device!r}; use 'cuda', 'cuda:N' or 'N'"
    )


def make(device: Any = None) -> CupyBackend:
    requested = "cupy" if device is None else f"cupy:{device}"
    try:
        import cupy
        import array_api_compat.cupy  # noqa: F401
    except Exception as exc:
        reason = (
            "CuPy is not installed"
            if isinstance(exc, ModuleNotFoundError) and (exc.name or "").startswith("cupy")
            else f"CuPy failed to import ({one_line(exc)})"
        )
        raise BackendUnavailable(requested, f"{reason}. {_INSTALL}") from None

    index = _parse_index(device, requested)
    try:
        count = cupy.cuda.runtime.getDeviceCount()
        if index is None:
            index = cupy.cuda.runtime.getDevice()
    except Exception as exc:
        raise BackendUnavailable(
            requested, f"no CUDA device answered ({one_line(exc)}). {_NO_GPU}"
        ) from None
    if count == 0:
        raise BackendUnavailable(requested, f"no CUDA device answered. {_NO_GPU}")
    if index >= count:
        raise BackendUnavailable(
            requested, f"there is no CUDA device {index}; this machine has {count}"
        )
    try:
        with cupy.cuda.Device(index):
            sample = cupy.arange(4, dtype=cupy.float32)
            # Elementwise kernels need NVRTC and matmul needs cuBLAS: check both answer.
            float((sample.reshape(2, 2) @ sample.reshape(2, 2) + 1).sum())
            name = cupy.cuda.runtime.getDeviceProperties(index)["name"]
    except Exception as exc:
        raise BackendUnavailable(
            requested, f"CUDA device {index} failed a smoke test ({one_line(exc)}). {_NO_GPU}"
        ) from None
    backend = CupyBackend(
        spec="cupy" if index == 0 else f"cupy:{index}",
        xp=array_api_compat.array_namespace(sample),
        device=array_api_compat.device(sample),
        device_name=name.decode() if isinstance(name, bytes) else str(name),
        version=cupy.__version__,
    )
    backend._cupy = cupy
    return backend
