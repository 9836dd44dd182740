"""At most one device-to-host transfer per epoch in the step loop.

Counted on array-api-strict's simulated ``device1``: every way an array reaches the host is
wrapped and counted — the Array's ``__bool__``, ``__float__``, ``__int__``, ``__index__``,
``__complex__``, ``__dlpack__``, ``__array__``, ``to_device`` to the CPU device, and
``backends.to_numpy`` / ``backends._strict.to_numpy`` (what ``xpnet._xp.fetch`` uses). Calls
nested inside a counted one are one transfer. ``xpnet.fit`` with validation data, train accuracy,
BatchNorm, Residual and Dropout, run for E=1 and E=4 epochs, must differ by exactly 3 transfers
(the loop's one ``fetch`` per epoch in ``Trainer._end_epoch``), whatever the number of steps per epoch;
the setup before the loop (input checks) is the same for both.
"""

from __future__ import annotations

import numpy as np
import pytest

import backends
from tests.helpers import count_host_transfers
import xpnet
from xpnet.nn import BatchNorm1d, Dense, Dropout, Residual

strict = pytest.importorskip("array_api_strict")

try:
    BACKEND = backends.get("strict:device1")
except backends.BackendUnavailable as exc:  # pragma: no cover - array-api-strict missing or too old
    pytest.skip(f"needs array-api-strict's device1: {exc}", allow_module_level=True)



@pytest.fixture
def transfers(monkeypatch):
    """A Counter of device-to-host transfers by kind while the test runs."""
    return count_host_transfers(monkeypatch, BACKEND)


def test_the_counter_sees_transfers(transfers) -> None:
    xp, dev = BACKEND.xp, BACKEND.device
    a = xp.asarray([1.0, 2.0, 3.0], device=dev)
    reads = {"float": lambda: float(xp.sum(a)), "bool": lambda: bool(xp.all(a > 0)),
             "int": lambda: int(xp.max(xp.astype(a, xp.int64))),
             "backends.to_numpy": lambda: backends.to_numpy(a),  # nested helpers: still one
             "Backend.to_numpy": lambda: BACKEND.to_numpy(a),
             "fetch": lambda: xpnet._xp.fetch(xp, [a, xp.sum(a)], xp.float64)}  # several arrays: one
    assert sum(transfers.values()) == 0
    for name, read in reads.items():
        before = sum(transfers.values())
        read()
        assert sum(transfers.values()) - before == 1, name
    xp.sum(a * 2.0) + 1.0  # device work alone crosses nothing
    assert sum(transfers.values()) == len(reads)


def _network() -> xpnet.Network:
    return xpnet.Network([Dense(4, 16, "relu"), BatchNorm1d(16), Dropout(0.2),
                          Residual([Dense(16, 16, "tanh"), BatchNorm1d(16), Dense(16, 16)]), Dropout(0.1),
                          Dense(16, 3)], seed=1, backend=BACKEND)


def _data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    return X, (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)


def _count_fit(transfers, epochs: int, steps: int, **kw) -> int:
    X, y = _data(20 * steps)
    model = _network()
    transfers.clear()
    history = xpnet.fit(model, X, y, validation_data=_data(30, seed=1), epochs=epochs, batch_size=20,
                        train_accuracy=True, optimizer=xpnet.Adam(lr=1e-3), **kw)
    total = sum(transfers.values())
    assert len(history["step_loss"]) == epochs * steps
    assert all(v is not None for v in history["accuracy"] + history["val_loss"] + history["val_accuracy"])
    return total


@pytest.mark.parametrize("steps", [20, 3])
@pytest.mark.parametrize("extra", [{}, {"record_grad_norms": True, "clip_norm": 1.0, "l2": 1e-3},
                                   {"validation_split": 0.0, "early_stopping": True, "patience": 50}],
                         ids=["plain", "grad-norms-clip-l2", "early-stopping"])
def test_one_transfer_per_epoch(transfers, steps: int, extra: dict) -> None:
    one = _count_fit(transfers, 1, steps, **extra)
    four = _count_fit(transfers, 4, steps, **extra)
    assert four - one == 3, f"{four} transfers for 4 epochs, {one} for 1 (with {steps} steps per epoch)"


def test_transfers_do_not_grow_with_steps(transfers) -> None:
    assert _count_fit(transfers, 2, 20) == _count_fit(transfers, 2, 2)


def test_a_per_step_transfer_would_be_caught(transfers) -> None:
    """A schedule that reads a device value every step breaks the rule, and the count shows it."""
    model_holder = {}

    def reading_schedule(t: int) -> float:
        return 1e-3 * (1.0 + 0.0 * float(model_holder["m"].params[0]))

    def run(epochs: int) -> int:
        X, y = _data(20 * 5)
        model_holder["m"] = model = _network()
        transfers.clear()
        xpnet.fit(model, X, y, epochs=epochs, batch_size=20, schedule=reading_schedule)
        return sum(transfers.values())

    assert run(4) - run(1) == 3 + 3 * 5
