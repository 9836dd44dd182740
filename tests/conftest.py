"""Backend matrix for the test suite.

Tests that take a ``backend`` argument run once per backend in ``all_backends()``
(``backends.available()``, narrowed by $XPNET_BACKENDS, e.g. ``numpy,strict:device1``).
Tests that take ``dtype`` run for "float32" and "float64" (names: use ``backend.dtype(dtype)``).
Mark GPU-only tests ``@pytest.mark.gpu``: they are skipped where no GPU backend works.
GPU backends' cases carry the ``gpu`` mark too, so ``-m "not gpu"`` leaves them out.
Without torch, the run ends with one line counting the torch tests it skipped (:func:`torch_summary`).
scripts/train.py runs started by tests draw their figures before returning (``XPNET_FIGURES=wait``), so
the tests can look at them; tests/test_cli_startup.py checks the background default.
"""

from __future__ import annotations

import os

import pytest

import backends
from tests.helpers import ENV_VAR, all_backends, gpu_available

FLOAT_DTYPES = ["float32", "float64"]

try:  # one torch thread for the whole suite: OpenMP spin contention on the shared 2-core box
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is optional
    pass
os.environ.setdefault("XPNET_FIGURES", "wait")  # inherited by the train.py subprocesses of the tests

try:
    _MATRIX, _MATRIX_ERROR = all_backends(), None
except (backends.BackendUnavailable, ValueError) as exc:  # reported in pytest_configure
    _MATRIX, _MATRIX_ERROR = [], exc


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs a working GPU backend (cupy or torch:cuda)")
    if _MATRIX_ERROR is not None:
        raise pytest.UsageError(f"${ENV_VAR}: {_MATRIX_ERROR}")


def pytest_report_header(config: pytest.Config) -> list[str]:
    return ["xpnet backends: " + ", ".join(b.describe() for b in _MATRIX)]


@pytest.fixture(
    params=[pytest.param(b, id=b.spec, marks=[pytest.mark.gpu] if b.on_gpu else []) for b in _MATRIX]
)
def backend(request: pytest.FixtureRequest) -> backends.Backend:
    """Each backend under test in turn (see ``tests.helpers.all_backends``)."""
    return request.param


@pytest.fixture
def one_blas_thread():
    """One BLAS thread while the test runs: multi-threaded OpenBLAS on a loaded 2-core machine is 10-50x
    slower for small matmuls (scikit-learn's estimator tests); use with ``pytest.mark.usefixtures``."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@pytest.fixture(params=FLOAT_DTYPES)
def dtype(request: pytest.FixtureRequest) -> str:
    """A floating dtype name; convert with ``backend.dtype(dtype)``."""
    return request.param


TORCH_EXTRA = "pip install -e '.[test,torch]'"


def torch_installed() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def torch_summary(skipped: list, installed: bool) -> str | None:
    """The line that says what the absent torch cost: the skipped tests (reports) whose reason names torch."""
    if installed:
        return None
    n = sum("torch" in str(getattr(r, "longrepr", "")) for r in skipped)
    return (f"torch is not installed: {n} torch tests skipped (the torch.autograd / torch.optim oracles and the "
            f"torch backends); {TORCH_EXTRA} to run them")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    line = torch_summary(terminalreporter.stats.get("skipped", []), torch_installed())
    if line is not None:
        terminalreporter.write_line(line)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gpu") is not None and not gpu_available():
        pytest.skip("needs a GPU backend (cupy or torch:cuda); none works here")
