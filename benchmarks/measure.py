"""Measurement helpers: host RSS peak, device memory peak, matmul rate, machine info."""

from __future__ import annotations

import ctypes
import datetime
import gc
import importlib
import importlib.util
import importlib.metadata
import os
import platform
import subprocess
import threading
import time

import numpy as np

# ------------------------------------------------------------------ host memory

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return None


def release_freed_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc).

    Without this, a peer can reuse memory freed by the previous peer and show
    a smaller RSS increase than it really needs.
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class RSSSampler:
    """Samples /proc/self/statm in a background thread; reports peak - baseline.

    The baseline is taken when the sampler starts (after releasing freed heap),
    so the figure is the extra resident memory the timed run needed.
    """

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.baseline = None
        self.peak = None
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        release_freed_memory()
        self.baseline = current_rss_bytes()
        self.peak = self.baseline
        if self.baseline is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(self.interval):
            rss = current_rss_bytes()
            if rss is not None and rss > self.peak:
                self.peak = rss

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            rss = current_rss_bytes()
            if rss is not None and rss > self.peak:
                self.peak = rss
        return False

    @property
    def delta_mb(self) -> float | None:
        if self.baseline is None:
            return None
        return (self.peak - self.baseline) / 2**20


# ------------------------------------------------------------------ CPU contention

def _system_busy_seconds() -> float | None:
    """CPU-seconds all processes have spent busy (from /proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal ...
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class CPUContention:
    """Share of the machine's CPUs used by *other* processes during a block.

    (system busy CPU-seconds - this process's CPU-seconds) / (wall * cores).
    A timing taken while this is well above zero was slowed by other work.
    Resolution is a clock tick (10 ms), so blocks under 0.25 s give None.
    """

    def __enter__(self):
        self._sys0 = _system_busy_seconds()
        t = os.times()
        self._own0 = t.user + t.system
        self._wall0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self._wall0
        sys1 = _system_busy_seconds()
        t = os.times()
        own = t.user + t.system - self._own0
        if self._sys0 is None or sys1 is None or wall < 0.25:  # below tick resolution
            self.foreign_share = None
        else:
            other = max(0.0, (sys1 - self._sys0) - own)
            self.foreign_share = min(1.0, other / (wall * usable_cores()))
        return False


def wait_until_quiet(threshold: float, max_wait: float, window: float = 1.0) -> float:
    """Wait (up to ``max_wait`` s) for a ``window`` in which other processes use less
    than ``threshold`` of the CPUs. Returns the seconds waited."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < max_wait:
        sys0 = _system_busy_seconds()
        if sys0 is None:
            break
        t = os.times()
        own0 = t.user + t.system
        time.sleep(window)
        t = os.times()
        other = (_system_busy_seconds() - sys0) - (t.user + t.system - own0)
        if other / (window * usable_cores()) < threshold:
            break
    return time.perf_counter() - t0


# ------------------------------------------------------------------ device memory

class DeviceMemory:
    """Peak device memory of a run, for ``kind`` in {None, "torch-cuda", "cupy"}.

    torch: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``.
    cupy:  the default memory pool's size after the run, starting from an empty
           pool (the pool keeps freed blocks, so its size is its high-water mark).
    """

    def __init__(self, kind: str | None):
        self.kind = kind
        self.base = 0

    def reset(self):
        if self.kind == "torch-cuda":
            import torch
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        elif self.kind == "cupy":
            import cupy
            cupy.cuda.Device().synchronize()
            pool = cupy.get_default_memory_pool()
            pool.free_all_blocks()
            self.base = pool.used_bytes()

    def peak_mb(self) -> float | None:
        if self.kind == "torch-cuda":
            import torch
            torch.cuda.synchronize()
            return (torch.cuda.max_memory_allocated() - self.base) / 2**20
        if self.kind == "cupy":
            import cupy
            cupy.cuda.Device().synchronize()
            return (cupy.get_default_memory_pool().total_bytes() - self.base) / 2**20
        return None


# ------------------------------------------------------------------ matmul rate

def _matmul_lib(lib: str):
    """Return (alloc(shape) -> array, matmul(a, b) -> array, sync())."""
    if lib == "numpy":
        rng = np.random.default_rng(0)
        return ((lambda s: rng.standard_normal(s, dtype=np.float32)),
                (lambda a, b: a @ b), (lambda: None), (lambda a: a.T))
    if lib in ("torch-cpu", "torch-cuda"):
        import torch
        dev = "cuda" if lib == "torch-cuda" else "cpu"
        g = torch.Generator(device=dev).manual_seed(0)
        sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
        return ((lambda s: torch.randn(s, generator=g, device=dev, dtype=torch.float32)),
                torch.matmul, sync, (lambda a: a.T))
    if lib == "cupy":
        import cupy
        rs = cupy.random.RandomState(0)
        return ((lambda s: rs.standard_normal(s, dtype=cupy.float32)),
                cupy.matmul, cupy.cuda.Device().synchronize, (lambda a: a.T))
    raise ValueError(lib)


def _time_loop(fn, sync, min_time: float, trials: int = 5):
    fn()
    sync()  # warm-up
    # calibrate the number of calls per trial
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        sync()
        dt = time.perf_counter() - t0
        if dt >= min_time / trials or n >= 1 << 20:
            break
        n *= 2
    best = []
    for _ in range(trials):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        sync()
        best.append((time.perf_counter() - t0) / n)
    return float(np.median(best))


def step_matmul_rate(lib: str, sizes, batch: int, min_time: float = 0.5) -> dict:
    """GFLOP/s of the matmuls of one training step of ``sizes`` at ``batch``.

    Per layer (d_in -> d_out): forward X @ W (B x d_in @ d_in x d_out),
    weight gradient X.T @ dZ and input gradient dZ @ W.T, i.e. 6 * B * d_in *
    d_out FLOPs -- the same count as the 6 x weights x samples network model.
    """
    alloc, mm, sync, T = _matmul_lib(lib)
    layers = []
    for d_in, d_out in zip(sizes[:-1], sizes[1:]):
        layers.append((alloc((batch, d_in)), alloc((d_in, d_out)), alloc((batch, d_out))))

    def step():
        for X, W, dZ in layers:
            mm(X, W)
            mm(T(X), dZ)
            mm(dZ, T(W))

    sec = _time_loop(step, sync, min_time)
    flops = 6.0 * batch * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return {"lib": lib, "batch": batch, "sizes": list(sizes),
            "seconds_per_step": sec, "gflops": flops / sec / 1e9}


def square_matmul_rate(lib: str, n: int, min_time: float = 0.5) -> dict:
    alloc, mm, sync, _ = _matmul_lib(lib)
    a, b = alloc((n, n)), alloc((n, n))
    sec = _time_loop(lambda: mm(a, b), sync, min_time, trials=3)
    return {"lib": lib, "n": n, "gflops": 2.0 * n**3 / sec / 1e9}


# ------------------------------------------------------------------ machine info

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _blas_info() -> list[dict]:
    try:
        import threadpoolctl
        return [{k: v for k, v in d.items()
                 if k in ("user_api", "internal_api", "version", "num_threads",
                          "threading_layer", "architecture", "prefix")}
                for d in threadpoolctl.threadpool_info()]
    except ImportError:
        pass
    try:
        cfg = np.show_config(mode="dicts")
        return [{"numpy_build_blas": cfg.get("Build Dependencies", {}).get("blas")}]
    except Exception:  # noqa: BLE001 - best effort only
        return []


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def gpu_info() -> dict | None:
    """Name and memory of GPU 0 via torch or cupy, or None without a GPU."""
    try:
        if importlib.util.find_spec("torch") is not None:
            import torch
            if torch.cuda.is_available():
                p = torch.cuda.get_device_properties(0)
                return {"name": p.name, "memory_gb": round(p.total_memory / 2**30, 1),
                        "via": "torch", "cuda": torch.version.cuda,
                        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32)}
    except Exception:  # noqa: BLE001
        pass
    try:
        if importlib.util.find_spec("cupy") is not None:
            import cupy
            if cupy.cuda.runtime.getDeviceCount() > 0:
                p = cupy.cuda.runtime.getDeviceProperties(0)
                name = p["name"].decode() if isinstance(p["name"], bytes) else p["name"]
                return {"name": name, "memory_gb": round(p["totalGlobalMem"] / 2**30, 1),
                        "via": "cupy"}
    except Exception:  # noqa: BLE001
        pass
    return None


def _git_commit(root) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                             capture_output=True, text=True, timeout=5)
        if out.returncode == 0:
            dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root,
                                   capture_output=True, text=True, timeout=5).stdout
            return out.stdout.strip() + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return None


def machine_info(command_line: str, root) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k.startswith(("OPENBLAS", "OMP_", "MKL_", "CUDA_VISIBLE", "CUPY_TF32", "XLA_",
                            "XPNET_"))}
    versions = {"python": platform.python_version()}
    for dist in ("numpy", "torch", "scikit-learn", "cupy", "cupy-cuda12x", "cupy-cuda13x",
                 "thinc", "jax", "jaxlib", "array-api-compat", "array-api-strict", "threadpoolctl",
                 "xpnet"):
        v = _version(dist)
        if v is not None:
            versions[dist] = v
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command_line,
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cores": usable_cores(),
        "blas": _blas_info(),
        "gpu": gpu_info(),
        "versions": versions,
        "env": env,
        "git_commit": _git_commit(root),
    }
