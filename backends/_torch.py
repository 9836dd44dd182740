"""PyTorch backend (through ``array_api_compat.torch``), on CPU or a CUDA device."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import _graphs, _malloc
from ._base import Backend, BackendUnavailable, one_line

_INSTALL = 'Install it with: pip install "xpnet[torch]"'
_KDL_CUDA = 2  # DLPack device type of CUDA memory


class TorchBackend(Backend):
    name = "torch"
    library = "torch"

    def is_native(self, x: Any) -> bool:
        return isinstance(x, self._torch.Tensor)

    def _prepare(self, obj: Any) -> Any:
        if isinstance(obj, np.ndarray) and not obj.flags.writeable:
            return obj.copy()  # torch warns about (and cannot honour) read-only memory
        if self.on_gpu and not self.is_native(obj) and _on_cuda(obj):
            return self._torch.from_dlpack(obj)  # GPU to GPU, no host round trip
        return super()._prepare(obj)

    @property
    def on_gpu(self) -> bool:
        return self.device.type == "cuda"

    def synchronize(self) -> None:
        if self.on_gpu:
            self._torch.cuda.synchronize(self.device)

    @property
    def can_capture(self) -> bool:
        return self.on_gpu and _graphs.graphs_enabled()

    def capture(self, step: Any) -> Any:
        if not self.on_gpu:
            return super().capture(step)
        return _graphs.capture_torch(self._torch, self.device, step)

    def versions(self) -> dict[str, str]:
        out = {**super().versions(), "torch": self.version}
        if self._torch.version.cuda:
            out["cuda"] = str(self._torch.version.cuda)
        return out

    def _describe_extra(self) -> str:
        if self.on_gpu:
            return f"CUDA {self._torch.version.cuda}, {self.device}"
        return f"{self._torch.get_num_threads()} threads"


def _on_cuda(obj: Any) -> bool:
    try:
        return obj.__dlpack_device__()[0] == _KDL_CUDA
    except Exception:
        return False


def _parse(torch: Any, device: Any, requested: str) -> Any:
    """A ``torch.device`` with an explicit index for CUDA (cuda -> cuda:N)."""
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except Exception:
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise BackendUnavailable(
            requested, f"unknown torch device {device!r}; use 'cpu', 'cuda' or 'cuda:N'"
        )
    if dev.type == "cpu":
        return torch.device("cpu")
    if torch.version.cuda is None:
        raise BackendUnavailable(
            requested,
            f"this PyTorch build ({torch.__version__}) has no CUDA support. Use --backend "
            "torch:cpu, or install a CUDA build of PyTorch on a machine with an NVIDIA GPU",
        )
    try:
        ok = torch.cuda.is_available()
        count = torch.cuda.device_count() if ok else 0
    except Exception as exc:
        ok, count = False, 0
        detail = f" ({one_line(exc)})"
    else:
        detail = ""
    if not ok or count == 0:
        raise BackendUnavailable(
            requested,
            f"no CUDA device answered{detail}. Use --backend torch:cpu, or run on a "
            "machine with an NVIDIA GPU",
        )
    index = torch.cuda.current_device() if dev.index is None else dev.index
    if index >= count:
        raise BackendUnavailable(
            requested, f"there is no cuda:{index}; this machine has {count} CUDA device(s)"
        )
    return torch.device("cuda", index)


THREADS_ENV = "XPNET_THREADS"


def set_cpu_threads(torch: Any) -> None:
    """torch's CPU thread count: $XPNET_THREADS if set, else 1 unless OMP_NUM_THREADS/MKL_NUM_THREADS say.

    A training step of a small network is dozens of tiny operations; torch's worker threads spin
    between them, and on a loaded machine they fight every other process for the cores (measured
    here, 2 cores under load: a moons MLP ran 10 epochs in 35 s with 2 threads, 0.17 s with 1).
    Large matrix products gain from more threads: ask for them with XPNET_THREADS=N (or
    ``train.py --threads N``). Process-wide, like torch.set_num_threads itself.
    """
    wanted = os.environ.get(THREADS_ENV, "").strip()
    if wanted:
        torch.set_num_threads(max(1, int(wanted)))
    elif not (os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS")):
        torch.set_num_threads(1)


def make(device: Any = None) -> TorchBackend:
    _malloc.tune()  # reuse freed temporaries' pages between steps (see backends/_malloc.py)
    requested = "torch" if device is None else f"torch:{device}"
    try:
        import torch
        import array_api_compat.torch  # noqa: F401
    except Exception as exc:
        reason = (
            "PyTorch is not installed"
            if isinstance(exc, ImportError)
            else f"PyTorch failed to import ({one_line(exc)})"
        )
        raise BackendUnavailable(requested, f"{reason}. {_INSTALL}") from None

    dev = _parse(torch, None if device is None else str(device), requested)
    try:
        sample = torch.arange(4, dtype=torch.float32, device=dev)
        float((sample.reshape(2, 2) @ sample.reshape(2, 2)).sum())  # smoke test
    except Exception as exc:
        raise BackendUnavailable(
            requested, f"{dev} failed a smoke test ({one_line(exc)})"
        ) from None
    if dev.type == "cuda":
        spec = "torch:cuda" if dev.index == 0 else f"torch:cuda:{dev.index}"
        name = torch.cuda.get_device_name(dev)
    else:
        spec, name = "torch:cpu", "CPU"
        set_cpu_threads(torch)
    backend = TorchBackend(
        spec=spec,
        xp=array_api_compat.array_namespace(sample),
        device=array_api_compat.device(sample),
        device_name=name,
        version=torch.__version__,
    )
    backend._torch = torch
    return backend
