"""Communicators for data-parallel training: the only code that imports mpi4py, cupy.cuda.nccl or
torch.distributed (xpnet reaches them through :func:`communicator`, as it reaches array libraries).

A communicator (:class:`MPICommunicator`) offers what xpnet's data-parallel hooks need: ``rank``,
``size``, ``local_rank`` (the rank among the processes on this machine), ``bind(backend)`` (choose how
device buffers are reduced), ``allreduce_(buf)`` (in-place sum of a 1-d array of the bound backend),
and host collectives of small Python objects: ``allgather``, ``bcast``, ``barrier``; ``abort(message)``.

How a buffer is reduced (``path``, chosen once by ``bind``; ``XPNET_COMM_PATH`` forces one):

* ``host``: NumPy, array-api-strict and torch CPU arrays: MPI sums the buffer's own memory in place.
* ``nccl``: CuPy with ``cupy.cuda.nccl``, or torch CUDA with torch.distributed's NCCL: the
  collective runs on the GPUs (NVLink / PCIe / InfiniBand with GPUDirect), ordered on the current
  stream, with no host synchronization. Chosen first on GPUs because it is the fastest path and
  needs nothing of the MPI library; one rank per GPU (a shared GPU is refused).
* ``cuda-aware``: the MPI library reads device memory itself (``MPIX_Query_cuda_support()`` says
  so, or ``XPNET_MPI_CUDA_AWARE=1``): the stream is synchronized first (MPI knows no streams).
* ``staged``: any other GPU case: synchronize, copy the buffer to (pinned) host memory, MPI
  Allreduce there, copy back. Always correct; costs two PCIe copies and a synchronization per step.

Failure: every collective runs under a watchdog; a rank that waits longer than ``timeout`` seconds
(``XPNET_COMM_TIMEOUT``, default 600) prints which collective it waited in and aborts the job
(``MPI_Abort``), so a dead or stuck rank never hangs the others forever. (NCCL calls return once
queued: a hang there surfaces at the next host collective, at the latest at the epoch's end.)
"""
from __future__ import annotations

import ctypes
import os
import socket
import sys
import threading
import time
from typing import Any

from ._base import BackendUnavailable, strict_to_numpy, to_numpy

__all__ = ["communicator", "MPICommunicator", "check_launch", "expected_mpiexec", "gpu_count", "PATHS",
           "DEFAULT_TIMEOUT"]

PATHS = ("host", "nccl", "cuda-aware", "staged")
DEFAULT_TIMEOUT = 600.0
ABORT_GRACE = 0.5  # seconds between printing why and MPI_Abort
# What launchers tell each process about the job's size (MPICH/Intel hydra and Slurm's PMI, Open MPI, MVAPICH).
_LAUNCHER_SIZE = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def expected_mpiexec() -> str:
    """The mpiexec of mpi4py's MPI library when it came from a wheel (next to the Python executable)."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return here if os.path.exists(here) else "mpiexec"


def _mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise BackendUnavailable("mpi", f"mpi4py is not installed ({exc}). Install it with: "
                                        f'pip install "xpnet[distributed]" (mpi4py and the mpich wheel)') from None
    return MPI


def _library() -> str:
    """The MPI library, e.g. "MPICH 5.0.2" or "Open MPI v5.0.5"."""
    words = [w for w in _mpi().Get_library_version().split() if w.rstrip(":,") != "Version"]
    return " ".join(words[:2]).rstrip(",")


def check_launch(size: int) -> None:
    """ValueError when this process is an MPI singleton (size 1) although a launcher started several:
    the mpiexec belongs to another MPI library than the one mpi4py was built with."""
    if size != 1:
        return
    for var in _LAUNCHER_SIZE:
        value = os.environ.get(var, "")
        if value.isdecimal() and int(value) > 1:
            library = _library()
            raise ValueError(f"this process is an MPI singleton (communicator of size 1) although its launcher "
                             f"started {value} processes ({var}={value}): that mpiexec belongs to another MPI "
                             f"library than mpi4py's ({library}); launch with {expected_mpiexec()} -n N ...")


def communicator(comm: Any, timeout: float | None = None) -> Any:
    """An xpnet communicator for ``comm``: an mpi4py communicator (``mpi4py.MPI.COMM_WORLD``), the string
    "mpi" (COMM_WORLD), or an object that already is one (it has ``allreduce_``), returned as it is."""
    if hasattr(comm, "allreduce_"):
        return comm
    if isinstance(comm, str) and comm.lower() in ("mpi", "world", "comm_world"):
        comm = _mpi().COMM_WORLD
    if type(comm).__module__.split(".")[0] == "mpi4py" and hasattr(comm, "Allreduce"):
        return MPICommunicator(comm, timeout)
    raise ValueError(f"comm must be an mpi4py communicator (e.g. mpi4py.MPI.COMM_WORLD), 'mpi' or None, "
                     f"got {type(comm).__name__}")


class _Watchdog:
    """One daemon thread: a collective that outlasts its deadline prints a line and aborts the job."""

    def __init__(self) -> None:
        self.active: dict[int, tuple[float, str, Any]] = {}
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def start(self) -> None:
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="xpnet-comm-watchdog", daemon=True)
                self.thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(0.25)
            now = time.monotonic()
            for deadline, what, owner in list(self.active.values()):
                if now > deadline:
                    owner.abort(f"waited more than {owner.timeout:g} s in {what}: another rank died, hangs or "
                                f"never reached it (set XPNET_COMM_TIMEOUT to wait longer)")


_WATCHDOG = _Watchdog()


class _Guard:
    """``with guard(what):`` registers the collective with the watchdog (two dict operations)."""

    __slots__ = ("owner", "what")

    def __init__(self, owner: "MPICommunicator"):
        self.owner, self.what = owner, ""

    def __call__(self, what: str) -> "_Guard":
        self.what = what
        return self

    def __enter__(self) -> None:
        o = self.owner
        _WATCHDOG.active[id(o)] = (time.monotonic() + o.timeout, self.what, o)

    def __exit__(self, *exc: Any) -> None:
        _WATCHDOG.active.pop(id(self.owner), None)


class MPICommunicator:
    """An mpi4py communicator as xpnet uses it (see the module docstring)."""

    def __init__(self, comm: Any, timeout: float | None = None):
        MPI = self.MPI = _mpi()
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        check_launch(MPI.COMM_WORLD.Get_size())
        env = os.environ.get("XPNET_COMM_TIMEOUT")
        self.timeout = float(timeout if timeout is not None else env if env else DEFAULT_TIMEOUT)
        if not self.timeout > 0:
            raise ValueError(f"the communicator timeout must be > 0 seconds, got {self.timeout}")
        self.guard = _Guard(self)
        _WATCHDOG.start()
        self._local: tuple[int, int] | None = None
        self.backend, self.path, self.why = None, None, ""
        self._reduce: Any = None
        self._stage: Any = None

    @property
    def local_rank(self) -> int:
        """This rank's index among the ranks on its machine (a collective the first time: call it on every rank)."""
        if self._local is None:
            with self.guard("MPI_Comm_split_type (finding the ranks on this machine)"):
                node = self.comm.Split_type(self.MPI.COMM_TYPE_SHARED)
            self._local = (node.Get_rank(), node.Get_size())
            node.Free()
        return self._local[0]

    # ------------------------------------------------------------------ host collectives
    def allgather(self, obj: Any) -> list:
        with self.guard("allgather"):
            return self.comm.allgather(obj)

    def bcast(self, obj: Any, root: int = 0) -> Any:
        with self.guard("bcast"):
            return self.comm.bcast(obj, root=root)

    def barrier(self) -> None:
        with self.guard("barrier"):
            self.comm.Barrier()

    def abort(self, message: str, code: int = 1) -> None:
        """Print ``message`` (one line, naming this rank) and end every rank of the job."""
        try:
            sys.stderr.write(f"xpnet: rank {self.rank} of {self.size}: {message}; aborting all ranks\n")
            sys.stderr.flush()
            time.sleep(ABORT_GRACE)  # MPI_Abort tears the launcher's output forwarding down at once: give it the line
        finally:
            self.comm.Abort(code)

    def describe(self) -> str:
        path = f"; buffers reduced by the {self.path} path: {self.why}" if self.path else ""
        return f"MPI ({_library()}), {self.size} ranks{path}"

    # ------------------------------------------------------------------ the gradient allreduce
    def bind(self, backend: Any) -> "MPICommunicator":
        """Choose how buffers of ``backend`` are reduced (collective: every rank calls it)."""
        if self.backend is not None and self.backend.spec == backend.spec and str(self.backend.device) == \
                str(backend.device):
            return self
        self.backend = backend
        self.path, self.why = _choose_path(self, backend)
        self._reduce = {"host": self._host, "cuda-aware": self._cuda_aware, "staged": self._staged,
                        "nccl": self._nccl_reduce}[self.path]
        if self.path == "nccl":
            self._nccl_setup(backend)
        return self

    def allreduce_(self, buf: Any) -> None:
        """In place: ``buf`` (1-d, contiguous, of the bound backend) becomes the sum over the ranks."""
        with self.guard("the gradient allreduce"):
            self._reduce(buf)

    def _host(self, buf: Any) -> None:
        self.comm.Allreduce(self.MPI.IN_PLACE, _host_view(self.backend, buf), op=self.MPI.SUM)

    def _cuda_aware(self, buf: Any) -> None:
        self.backend.synchronize()  # MPI reads device memory outside any stream
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)

    def _staged(self, buf: Any) -> None:
        be = self.backend
        if be.name == "cupy":
            import cupyx

            if self._stage is None or self._stage.shape != buf.shape or self._stage.dtype != buf.dtype:
                self._stage = cupyx.empty_pinned(buf.shape, dtype=buf.dtype)
            be.synchronize()
            buf.get(out=self._stage)  # synchronous device-to-host copy
            self.comm.Allreduce(self.MPI.IN_PLACE, self._stage, op=self.MPI.SUM)
            buf.set(self._stage)
            return
        be.synchronize()
        host = to_numpy(buf).copy()
        self.comm.Allreduce(self.MPI.IN_PLACE, host, op=self.MPI.SUM)
        buf[...] = be.asarray(host)

    def _nccl_setup(self, backend: Any) -> None:
        if backend.name == "cupy":
            import cupy
            from cupy.cuda import nccl

            uid = self.bcast(nccl.get_unique_id() if self.rank == 0 else None)
            with cupy.cuda.Device(backend.device.id), self.guard("ncclCommInitRank"):
                self._nccl = nccl.NcclCommunicator(self.size, uid, self.rank)
            self._nccl_types = {"float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64}
            self._nccl_sum = nccl.NCCL_SUM
            return
        import torch
        import torch.distributed as dist

        torch.cuda.set_device(backend.device)  # NCCL works on the current device: this rank's
        if not dist.is_initialized():
            address = None
            if self.rank == 0:
                with socket.socket() as s:
                    s.bind(("", 0))
                    address = f"tcp://{socket.getfqdn()}:{s.getsockname()[1]}"
            address = self.bcast(address)
            with self.guard("torch.distributed.init_process_group (NCCL)"):
                dist.init_process_group("nccl", init_method=address, rank=self.rank, world_size=self.size)
        elif dist.get_world_size() != self.size or dist.get_rank() != self.rank:
            raise ValueError(f"torch.distributed is initialized as rank {dist.get_rank()} of {dist.get_world_size()}, "
                             f"but the MPI communicator has this process as rank {self.rank} of {self.size}")
        self._dist = dist

    def _nccl_reduce(self, buf: Any) -> None:
        if self.backend.name == "cupy":
            import cupy

            self._nccl.allReduce(buf.data.ptr, buf.data.ptr, buf.size, self._nccl_types[buf.dtype.name],
                                 self._nccl_sum, cupy.cuda.get_current_stream().ptr)
        else:
            self._dist.all_reduce(buf)

    def __deepcopy__(self, memo: dict) -> "MPICommunicator":  # a handle: scikit-learn's clone shares it
        return self

    def __reduce__(self) -> Any:
        raise TypeError("an MPI communicator cannot be pickled: pass comm again where the estimator is loaded")


def _host_view(backend: Any, buf: Any) -> Any:
    """A NumPy array sharing ``buf``'s memory (host backends)."""
    if backend.name == "strict":
        return strict_to_numpy(buf)
    if backend.name == "torch":
        return buf.numpy()
    return buf


def _gpu(backend: Any) -> bool:
    return backend.name == "cupy" or (backend.name == "torch" and getattr(backend.device, "type", "cpu") == "cuda")


def _choose_path(comm: MPICommunicator, backend: Any) -> tuple[str, str]:
    """(path, why) for ``backend``'s buffers (see the module docstring); the same on every rank."""
    if not _gpu(backend):
        return "host", "the arrays are in host memory: MPI sums the buffer in place"
    forced = os.environ.get("XPNET_COMM_PATH", "").strip().lower()
    if forced:
        if forced not in PATHS[1:]:
            raise ValueError(f"XPNET_COMM_PATH={forced!r}: use one of {', '.join(PATHS[1:])} for GPU arrays")
        path, why = forced, "forced by XPNET_COMM_PATH"
    elif comm.size > 1 and _nccl_available(backend):
        path, why = "nccl", "NCCL reduces on the GPUs, stream-ordered, without a host synchronization"
    elif _cuda_aware():
        path, why = "cuda-aware", "the MPI library reads device memory (MPIX_Query_cuda_support)"
    else:
        path, why = "staged", "no NCCL and an MPI library that is not CUDA-aware: through pinned host memory"
    if path == "nccl":  # NCCL needs one GPU per rank: agree on every rank before anyone initializes it
        where = comm.allgather((socket.gethostname(), str(backend.device)))
        seen: dict = {}
        for r, w in enumerate(where):
            if w in seen:
                raise ValueError(f"NCCL needs one GPU per rank, but ranks {seen[w]} and {r} both use {w[1]} on "
                                 f"{w[0]}: give each rank its own device (scripts/train.py --distributed picks "
                                 f"the rank's local index) or set XPNET_COMM_PATH=staged")
            seen[w] = r
    return path, why


def _nccl_available(backend: Any) -> bool:
    try:
        if backend.name == "cupy":
            from cupy.cuda import nccl

            return bool(getattr(nccl, "available", True))
        import torch.distributed as dist

        return dist.is_available() and dist.is_nccl_available()
    except Exception:  # noqa: BLE001 - not built with NCCL
        return False


def _cuda_aware() -> bool:
    """Whether the MPI library in this process reads CUDA device memory (``XPNET_MPI_CUDA_AWARE`` overrides)."""
    env = os.environ.get("XPNET_MPI_CUDA_AWARE", "").strip().lower()
    if env:
        return env in ("1", "true", "yes", "on")
    try:
        with open("/proc/self/maps", encoding="utf-8") as f:
            libs = {line.split()[-1] for line in f if "libmpi" in line and ".so" in line}
        for lib in sorted(libs):
            fn = getattr(ctypes.CDLL(lib), "MPIX_Query_cuda_support", None)
            if fn is not None:
                return bool(fn())
    except OSError:
        pass
    return False


def gpu_count(library: str) -> int:
    """How many GPUs ``library`` ("cupy" or "torch") sees here (0 when it is missing or sees none)."""
    try:
        if library == "cupy":
            import cupy

            return int(cupy.cuda.runtime.getDeviceCount())
        if library == "torch":
            import torch

            return int(torch.cuda.device_count())
    except Exception:  # noqa: BLE001 - no library, no driver: no GPU
        return 0
    return 0
