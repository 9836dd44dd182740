"""Tests of the ``backends`` package: lookup, conversion, reporting and error messages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import array_api_compat
import numpy as np
import pytest

import backends
from backends import Backend, BackendUnavailable
from tests.helpers import all_backends, assert_close, assert_equal

CANONICAL_ORDER = ["numpy", "strict", "strict:device1", "torch:cpu", "cupy", "torch:cuda"]


def _unavailable(spec: str, device: str | None = None) -> str:
    """The message of the BackendUnavailable that get(spec, device) raises; checks its shape."""
    with pytest.raises(BackendUnavailable) as info:
        backends.get(spec, device)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("backend '")
    assert " is not available: " in msg
    err = info.value
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)
    return msg


def _torch_cuda_works() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


# -- lookup ------------------------------------------------------------------------------


def test_available_order_and_cache() -> None:
    specs = backends.available()
    assert specs[0] == "numpy"
    assert specs == [s for s in CANONICAL_ORDER if s in specs]
    assert backends.available() == specs  # cached, and a fresh list each time
    assert backends.available() is not specs


def test_get(backend: Backend) -> None:
    again = backends.get(backend.spec)
    assert isinstance(again, Backend)
    assert again == backend and hash(again) == hash(backend)
    assert again.spec == backend.spec
    assert backends.get(backend) is backend
    assert backend.spec in repr(backend)
    assert backend.name in ("numpy", "cupy", "torch", "strict")
    assert backend.spec.split(":")[0] == backend.name


def test_spec_forms() -> None:
    assert backends.get("numpy") == backends.get("numpy", "cpu") == backends.get("numpy:cpu")
    assert backends.get("NumPy").spec == "numpy"
    assert backends.get("array_api_strict").spec == "strict"
    assert backends.get("strict", "device1").spec == "strict:device1"
    assert backends.get("strict:CPU_DEVICE").spec == "strict"
    assert backends.get("numpy") != backends.get("strict")
    with pytest.raises(ValueError, match="device given twice"):
        backends.get("strict:device1", "device2")


def test_torch_specs() -> None:
    torch = pytest.importorskip("torch")
    cpu = backends.get("torch")
    assert cpu == backends.get("torch", "cpu") == backends.get("torch:cpu")
    assert cpu.spec == "torch:cpu"
    assert cpu.device == torch.device("cpu")
    assert cpu.xp is array_api_compat.array_namespace(torch.zeros(1))
    assert not cpu.on_gpu


def test_strict_devices() -> None:
    xps = pytest.importorskip("array_api_strict")
    b = backends.get("strict:device1")
    assert b.device == xps.Device("device1")
    assert b.xp is xps
    x = b.asarray([1.0, 2.0])
    assert array_api_compat.device(x) == xps.Device("device1")
    assert_equal(backends.to_numpy(x), np.array([1.0, 2.0]))
    # dtypes follow the simulated device's capabilities
    with pytest.raises(ValueError, match="not supported"):
        backends.get("strict:no_float64").dtype("float64")


def test_fast_path_placeholder(backend: Backend) -> None:
    assert backends.fast_path(backend, "matmul_bias_relu") is None


# -- conversion ----------------------------------------------------------------------------


def test_asarray_round_trip(backend: Backend, dtype: str) -> None:
    host = np.arange(6, dtype=dtype).reshape(2, 3) / 7
    x = backend.asarray(host)
    assert array_api_compat.array_namespace(x) is backend.xp
    assert array_api_compat.device(x) == backend.device
    assert x.dtype == backend.dtype(dtype)
    assert x.shape == (2, 3)
    assert_equal(x, host, backend=backend)
    out = backend.to_numpy(x)
    assert type(out) is np.ndarray and out.dtype == np.dtype(dtype)
    assert_equal(out, host)


@pytest.mark.parametrize("name", ["float32", "float64", "int32", "int64", "bool"])
def test_asarray_dtype_names(backend: Backend, name: str) -> None:
    x = backend.asarray([[0, 1], [2, 3]], dtype=name)
    assert x.dtype == backend.dtype(name)
    assert x.dtype == backend.dtype(backend.dtype(name))  # dtype objects pass through
    assert_equal(x, np.array([[0, 1], [2, 3]], dtype=name), backend=backend)


def test_asarray_infers_like_numpy(backend: Backend) -> None:
    for data, expected in [([1.5, 2.5], "float64"), ([1, 2], "int64"), ([True, False], "bool")]:
        x = backend.asarray(data)
        assert x.dtype == backend.dtype(expected)
        assert_equal(x, np.asarray(data), backend=backend)
    scalar = backend.asarray(3.0, dtype="float32")
    assert scalar.shape == () and float(scalar) == 3.0


def test_asarray_from_other_backends(backend: Backend) -> None:
    host = np.linspace(-1, 1, 5, dtype=np.float32)
    for src in all_backends():
        x = backend.asarray(src.asarray(host))
        assert_equal(x, host, backend=backend)


def test_asarray_read_only_numpy(backend: Backend) -> None:
    host = np.arange(3.0)
    host.flags.writeable = False
    assert_equal(backend.asarray(host), host, backend=backend)


def test_dtype_lookup(backend: Backend) -> None:
    assert backend.dtype("float32") == backend.xp.float32
    assert backend.dtype(np.float64) == backend.xp.float64
    assert backend.dtype(np.dtype("int64")) == backend.xp.int64
    with pytest.raises(ValueError, match="float8"):
        backend.dtype("float8")


def test_to_numpy_shapes(backend: Backend) -> None:
    zero_d = backend.to_numpy(backend.asarray(2.5))
    assert isinstance(zero_d, np.ndarray) and zero_d.shape == () and zero_d == 2.5
    mask = backend.to_numpy(backend.asarray([True, False]))
    assert mask.dtype == np.bool_ and mask.tolist() == [True, False]
    empty = backend.to_numpy(backend.xp.zeros((0, 3), device=backend.device))
    assert empty.shape == (0, 3)


def test_module_to_numpy() -> None:
    assert_equal(backends.to_numpy([1, 2]), np.array([1, 2]))
    assert backends.to_numpy(np.float32(1.5)).dtype == np.float32
    torch = pytest.importorskip("torch")
    t = torch.ones(2, requires_grad=True) * 2
    assert_equal(backends.to_numpy(t), np.array([2.0, 2.0], dtype=np.float32))


def test_synchronize(backend: Backend) -> None:
    x = backend.xp.ones((4, 4), dtype=backend.dtype("float64"), device=backend.device)
    y = x @ x
    backend.synchronize()
    assert_close(y, np.full((4, 4), 4.0), backend=backend)


# -- reporting ------------------------------------------------------------------------------


def test_describe_and_versions(backend: Backend) -> None:
    text = backend.describe()
    assert "\n" not in text
    assert backend.version in text
    assert backend.device_name in text
    versions = backend.versions()
    assert versions["numpy"] == np.__version__
    assert backend.version in versions.values()


# -- helpers --------------------------------------------------------------------------------


def test_assert_close_checks(backend: Backend) -> None:
    x = backend.asarray([1.0, 2.0], dtype="float32")
    assert_close(x, np.array([1.0, 2.0 + 1e-6], dtype=np.float32), backend=backend)
    assert_close(x, [1.0, 2.0], backend=backend)  # lists carry no dtype of their own
    with pytest.raises(AssertionError, match="dtype"):
        assert_close(x, np.array([1.0, 2.0]), backend=backend)
    assert_close(x, np.array([1.0, 2.0]), backend=backend, check_dtype=False)
    with pytest.raises(AssertionError, match="shape"):
        assert_close(x, np.array([[1.0, 2.0]], dtype=np.float32))
    with pytest.raises(AssertionError):
        assert_close(x, np.array([1.0, 2.1], dtype=np.float32))
    with pytest.raises(AssertionError):
        assert_equal(x, np.array([1.0, 2.0 + 1e-6], dtype=np.float32))
    other = next((b for b in all_backends() if b.xp is not backend.xp), None)
    if other is not None:
        with pytest.raises(AssertionError, match="namespace"):
            assert_close(other.asarray([1.0, 2.0], dtype="float32"), [1.0, 2.0], backend=backend)


def test_assert_close_checks_device() -> None:
    pytest.importorskip("array_api_strict")
    x = backends.get("strict").asarray([1.0])
    with pytest.raises(AssertionError, match="device"):
        assert_close(x, [1.0], backend="strict:device1")


# -- errors ---------------------------------------------------------------------------------


def test_unknown_backend_message() -> None:
    msg = _unavailable("jax")
    assert "'jax'" in msg
    for name in ("numpy", "cupy", "torch", "strict"):
        assert name in msg


def test_cupy_not_installed_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` fail
    msg = _unavailable("cupy")
    assert msg.startswith("backend 'cupy' is not available: CuPy is not installed")
    assert 'pip install "xpnet[cupy-cuda12x]"' in msg and "cupy-cuda13x" in msg


def test_torch_not_installed_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    msg = _unavailable("torch:cpu")
    assert "PyTorch is not installed" in msg
    assert 'pip install "xpnet[torch]"' in msg


def test_strict_not_installed_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "array_api_strict", None)
    msg = _unavailable("strict")
    assert "pip install array-api-strict" in msg


def test_torch_cuda_unavailable_message() -> None:
    pytest.importorskip("torch")
    if _torch_cuda_works():
        pytest.skip("CUDA is available here")
    msg = _unavailable("torch:cuda")
    assert msg.startswith("backend 'torch:cuda' is not available: ")
    assert "torch:cpu" in msg  # points at the working alternative


def test_cupy_no_device_message() -> None:
    pytest.importorskip("cupy")
    if "cupy" in backends.available():
        pytest.skip("a CUDA device answers here")
    msg = _unavailable("cupy")
    assert "--backend numpy" in msg


def test_bad_device_messages() -> None:
    pytest.importorskip("array_api_strict")
    msg = _unavailable("strict:device9")
    assert "device9" in msg and "device1" in msg  # lists the valid devices
    assert "numpy" in _unavailable("numpy", "cuda")
    pytest.importorskip("torch")
    assert "cuda:N" in _unavailable("torch:tpu")


@pytest.mark.gpu
def test_gpu_backends_report_device_names() -> None:
    for b in all_backends():
        if b.on_gpu:
            assert b.device_name != "CPU"
            assert "CUDA" in b.describe()


def test_malloc_tuning_switch(monkeypatch):
    """The allocator tuning runs once, and XPNET_MALLOC_TUNING=0 turns it off."""
    from backends import _malloc

    monkeypatch.setattr(_malloc, "_result", None)
    monkeypatch.setenv("XPNET_MALLOC_TUNING", "0")
    assert _malloc.tune() is False
    monkeypatch.delenv("XPNET_MALLOC_TUNING")
    assert _malloc.tune() is False  # decided once per process
    monkeypatch.setattr(_malloc, "_result", None)
    import platform

    expected = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert _malloc.tune() is expected


@pytest.mark.parametrize("env,expected", [({}, "1"), ({"XPNET_THREADS": "2"}, "2"), ({"OMP_NUM_THREADS": "2"}, "2")])
def test_torch_cpu_thread_policy(env, expected):
    """torch:cpu runs one thread unless XPNET_THREADS (or OMP/MKL_NUM_THREADS) asks for more (see backends/_torch.py)."""
    pytest.importorskip("torch")
    clean = {k: v for k, v in os.environ.items() if k not in ("XPNET_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    code = "import backends, torch; backends.get('torch:cpu'); print(torch.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", code], env=clean | env, capture_output=True, text=True, check=True,
                         cwd=str(Path(__file__).resolve().parents[1]))
    assert out.stdout.strip() == expected
