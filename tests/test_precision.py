"""Mixed precision: float16/bfloat16 compute over float32 master weights, dynamic loss scaling."""
from __future__ import annotations

import numpy as np
import pytest

import xpnet
from tests.helpers import all_backends, assert_equal, to_numpy
from xpnet.nn.precision import Precision

SPECS = [b.spec for b in all_backends()]


def _has(backend, dtype: str) -> bool:
    return dtype in backend._dtypes


def _moons(n=600):
    from sklearn.datasets import make_moons

    X, y = make_moons(n, noise=0.2, random_state=0)
    return X[: n * 3 // 4], y[: n * 3 // 4], X[n * 3 // 4:], y[n * 3 // 4:]


def _digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X - X.mean(0)) / (X.std(0) + 1e-6)
    return X[:1400], y[:1400], X[1400:], y[1400:]


def _accuracy(model, X, y):
    return float(np.mean(to_numpy(model.predict(X)).reshape(-1) == y))


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
@pytest.mark.parametrize("data,sizes,epochs", [(_moons, [2, 32, 16, 1], 25), (_digits, [64, 64, 10], 8)],
                         ids=["moons", "digits"])
def test_low_precision_reaches_float32_accuracy(backend, precision, data, sizes, epochs) -> None:
    if not _has(backend, precision):
        pytest.skip(f"{backend.spec} has no {precision}")
    Xtr, ytr, Xte, yte = data()
    acc = {}
    for p in ("float32", precision):
        model = xpnet.MLP(sizes, backend=backend, precision=p, seed=3, dropout=0.1)
        xpnet.fit(model, Xtr, ytr, optimizer=xpnet.Adam(lr=3e-3), epochs=epochs, batch_size=32)
        acc[p] = _accuracy(model, Xte, yte)
        assert model.params.dtype == backend.dtype("float32") and model.grads.dtype == backend.dtype("float32")
    assert acc[precision] >= acc["float32"] - 0.01, acc


def test_compute_runs_in_the_low_dtype_over_float32_masters(backend) -> None:
    if not _has(backend, "float16"):
        pytest.skip(f"{backend.spec} has no float16")
    model = xpnet.MLP([3, 5, 2], backend=backend, precision="float16", dropout=0.2, batchnorm=True)
    f16, f32 = backend.dtype("float16"), backend.dtype("float32")
    assert model.cparams.dtype == f16 and model.params.dtype == f32 and model.buffers.dtype == f32
    assert model.layers[0].layers[0].W.dtype == f16  # the layers see the compute copy
    X = np.random.default_rng(0).normal(size=(8, 3))
    opt = xpnet.Adam()
    hist = xpnet.fit(model, X, np.arange(8) % 2, optimizer=opt, epochs=2, batch_size=4)
    assert all(v.dtype == f32 for v in opt.state.values())
    assert model.logits(X).dtype == f32 and model.forward(X).dtype == f32
    assert hist["loss_scale"] == [2.0 ** 16] * 2 and hist["skipped_steps"] == [0, 0]
    assert_equal(model.cparams, to_numpy(model.params).astype(np.float16), backend=backend)


def test_loss_scaler_skips_and_halves_then_grows(backend) -> None:
    xp = backend.xp
    scaler = xpnet.optim.LossScaler(init_scale=8.0, growth_interval=3)
    g = backend.asarray([1.0, float("inf"), 2.0], dtype="float32")
    assert not scaler.update(g) and scaler.scale == 4.0 and scaler.skipped == 1
    assert_equal(g, np.zeros(3, dtype=np.float32), backend=backend)  # nothing non-finite lingers
    ok = backend.asarray([1.0, 2.0], dtype="float32")
    assert [scaler.update(ok) for _ in range(3)] == [True] * 3 and scaler.scale == 8.0  # doubled after 3 clean
    assert scaler.update(xp.asarray([float("nan")], device=backend.device)) is False and scaler.scale == 4.0
    assert scaler.clean == 0 and scaler.skipped == 2


def test_forced_overflow_skips_steps_and_halves_the_scale_exactly(backend) -> None:
    if not _has(backend, "float16"):
        pytest.skip(f"{backend.spec} has no float16")
    Xtr, ytr, _, _ = _moons(400)
    start = 2.0 ** 40  # d_logits × 2^40 overflows float16 (max 65504): the first steps must be skipped
    model = xpnet.MLP([2, 16, 1], backend=backend, precision=Precision("float16", init_scale=start), seed=1)
    before = to_numpy(model.params).copy()
    opt = xpnet.SGD(lr=0.1)
    hist = xpnet.fit(model, Xtr, ytr, optimizer=opt, epochs=1, batch_size=300)  # one step per epoch
    assert hist["skipped_steps"] == [1] and hist["loss_scale"] == [start / 2]
    assert_equal(model.params, before, backend=backend)  # a skipped step changes nothing
    hist = xpnet.fit(model, Xtr, ytr, optimizer=opt, epochs=40, batch_size=300)
    skipped = sum(hist["skipped_steps"])
    assert hist["loss_scale"][-1] == start / 2 ** skipped and 0 < skipped < 40  # each fit starts a new scaler
    assert not np.array_equal(to_numpy(model.params), before)


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_low_precision_parity_across_backends(precision) -> None:
    """float16 (numpy, torch, cupy) and bfloat16 (torch CPU/CUDA) runs agree with each other within 1e-2
    relative on the step losses (float16 matmuls accumulate differently per library; measured: numpy
    vs torch:cpu 3e-4 for float16), with bit-identical initial weights and masks."""
    specs = [s for s in SPECS if precision in xpnet.nn.Network([xpnet.nn.Dense(2, 1)], backend=s).backend._dtypes]
    if len(specs) < 2:
        pytest.skip(f"needs two backends with {precision}")
    Xtr, ytr, _, _ = _moons(400)
    runs = {}
    for spec in specs:
        model = xpnet.MLP([2, 32, 16, 1], backend=spec, precision=precision, seed=5, dropout=0.1)
        runs[spec] = np.array(xpnet.fit(model, Xtr, ytr, epochs=10, batch_size=32)["step_loss"])
    ref = runs[specs[0]]
    for spec in specs[1:]:
        assert np.max(np.abs(runs[spec] - ref) / np.abs(ref)) < 1e-2, spec


def test_backends_without_the_dtype_refuse_in_one_line() -> None:
    if "strict" not in SPECS:
        pytest.skip("needs array-api-strict")
    with pytest.raises(ValueError, match=r"^backend 'strict' has no float16: use precision='float32' or a backend "
                                         r"with float16 \(numpy, cupy or torch\)$"):
        xpnet.MLP([2, 1], backend="strict", precision="float16")
    with pytest.raises(ValueError, match="keeps float32 master parameters: use dtype='float32'"):
        xpnet.MLP([2, 1], dtype="float64", precision="float16")
    with pytest.raises(ValueError, match="unknown precision 'float8'"):
        xpnet.MLP([2, 1], precision="float8")


def test_float16_resume_is_bit_identical(tmp_path) -> None:
    Xtr, ytr, _, _ = _moons(400)

    def model():
        return xpnet.MLP([2, 16, 1], precision=Precision("float16", init_scale=2.0 ** 30), seed=2, dropout=0.1)

    full = model()
    h_full = xpnet.fit(full, Xtr, ytr, epochs=6, batch_size=64)
    xpnet.fit(model(), Xtr, ytr, epochs=3, batch_size=64, checkpoint=tmp_path / "c.npz")
    resumed = model()
    h = xpnet.fit(resumed, Xtr, ytr, epochs=6, batch_size=64, resume=tmp_path / "c.npz")
    assert_equal(resumed.params, to_numpy(full.params))
    assert h["loss_scale"] == h_full["loss_scale"] and h["skipped_steps"] == h_full["skipped_steps"]
    assert sum(h_full["skipped_steps"]) > 0  # the scaler's state mattered
