"""Backend fast paths (fused CuPy kernels) against xpnet's portable code.

The kernels must give the portable bits exactly for integer work (dropout masks, ReLU)
and agree to rounding for floating work (Adam, fused losses); a whole training run with
and without them must stay within the parity tolerance.
"""
from __future__ import annotations

import numpy as np
import pytest

import backends
import xpnet
from xpnet import nn
from xpnet.nn import losses

ALL_KERNELS = ("adam", "relu_forward", "dropout_mask", "binary_cross_entropy", "softmax_cross_entropy",
               "dense_backward")
NUMPY_KERNELS = ("dense_backward", "adam", "relu_forward", "binary_cross_entropy", "softmax_cross_entropy")


def test_fast_paths_only_where_registered():
    for spec in backends.available():
        be = backends.get(spec)
        for name in ALL_KERNELS:
            expect = be.name == "cupy" or (be.name == "numpy" and name in NUMPY_KERNELS)
            assert (backends.fast_path(be, name) is not None) == expect
            assert (backends.fast_path(be.xp, name) is not None) == expect
    assert backends.fast_path("numpy", "dropout_mask") is None
    assert backends.fast_path("cupy", "no_such_kernel") is None or "cupy" not in backends.available()


def test_env_var_turns_fast_paths_off(monkeypatch):
    monkeypatch.setenv("XPNET_FAST_PATHS", "0")
    assert backends.fast_path("cupy", "adam") is None
    assert backends.fast_path("numpy", "dense_backward") is None


@pytest.mark.parametrize("size", [1000, 200_001])
def test_numpy_adam_fast_path_bit_identical(monkeypatch, size):
    rng = np.random.default_rng(5)
    results = []
    for env in ("1", "0"):
        monkeypatch.setenv("XPNET_FAST_PATHS", env)
        p = rng.normal(size=size).astype(np.float32) * 0 + np.linspace(-1, 1, size, dtype=np.float32)
        opt = xpnet.Adam(lr=1e-2)
        for t in range(5):
            g = np.cos(np.arange(size, dtype=np.float32) * (t + 1))
            opt.step(p, g)
        assert (opt._fused is not None) == (env == "1")
        results.append((p.copy(), opt.state["m"].copy(), opt.state["v"].copy()))
    for a, b in zip(*results):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("need_dx", [True, False])
def test_dense_backward_fast_paths_bit_identical(monkeypatch, need_dx):
    """The fast Dense backward (numpy here; cupy on a GPU) gives the portable bits."""
    rng = np.random.default_rng(4)
    for spec in [s for s in backends.available() if backends.fast_path(s, "dense_backward")]:
        be = backends.get(spec)
        x, dy, W = (be.asarray(rng.normal(size=s), dtype="float32") for s in [(9, 5), (9, 3), (5, 3)])
        outs = []
        for env in ("1", "0"):
            monkeypatch.setenv("XPNET_FAST_PATHS", env)
            layer = nn.Dense(5, 3)
            nn.standalone(layer, 5, backend=be)
            layer.W[...], layer.b[...] = W, W[0]
            layer.set_need_dx(need_dx)
            gW, gb = layer.grad_W, layer.grad_b
            assert (layer._fused is not None) == (env == "1")
            dx = layer.backward(dy, x)
            outs.append([be.to_numpy(a).copy() for a in (gW, gb)] + ([be.to_numpy(dx)] if need_dx else [dx]))
        for a, b in zip(*outs):
            if b is None:
                assert a is None
            else:
                assert np.array_equal(a, b)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(1, 1), (7, 1), (33, 3), (64, 10), (5, 4)])
def test_numpy_loss_and_relu_kernels_bit_identical(dtype, shape):
    """The NumPy loss and ReLU kernels give the portable code's bits (values, gradients, outputs, masks),
    down to the sign of zeros, with logits up to ±1e4."""
    from xpnet.nn import losses as L

    rng = np.random.default_rng(sum(shape))
    xp = backends.get("numpy").xp
    z = (rng.normal(size=shape) * rng.choice([1.0, 30.0, 1e4], size=shape)).astype(dtype)
    z.flat[0] = -0.0
    y01 = (rng.random(shape) < 0.5).astype(dtype)
    onehot = np.eye(shape[1], dtype=dtype)[rng.integers(0, shape[1], shape[0])]
    kernels = {name: backends.fast_path("numpy", name) for name in NUMPY_KERNELS}
    for name, ref, y in (("binary_cross_entropy", L.binary_cross_entropy, y01),
                         ("softmax_cross_entropy", L.softmax_cross_entropy, onehot)):
        (v1, g1), (v2, g2) = kernels[name](z, y), ref(xp, z, y)
        assert np.asarray(v1).tobytes() == np.asarray(v2).tobytes() and np.asarray(v1).dtype == np.dtype(dtype)
        assert g1.dtype == g2.dtype and g1.tobytes() == g2.tobytes(), name
    out, mask = kernels["relu_forward"](z)
    portable_mask = xp.astype(z > 0.0, z.dtype)
    assert out.tobytes() == (z * portable_mask).tobytes()
    dy = rng.normal(size=shape).astype(dtype)
    assert (dy * mask).tobytes() == (dy * portable_mask).tobytes()


@pytest.fixture
def cupy_backend():
    if "cupy" not in backends.available():
        pytest.skip("needs CuPy with a CUDA device")
    return backends.get("cupy")


def _portable(monkeypatch, fn):
    monkeypatch.setenv("XPNET_FAST_PATHS", "0")
    try:
        return fn()
    finally:
        monkeypatch.delenv("XPNET_FAST_PATHS")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (256, 512), (33, 1)])
def test_dropout_mask_bits_and_relu_exact(cupy_backend, monkeypatch, dtype, shape):
    be = cupy_backend
    dt = be.dtype(dtype)
    def dropout():
        layer = nn.Dropout(0.3)
        nn.standalone(layer, shape[1], backend=be, dtype=dtype, seed=5)
        layer.stream = 77
        return layer

    fused = dropout()
    portable = _portable(monkeypatch, dropout)
    assert fused._fused is not None and portable._fused is None
    for counter in (0, 1, 12345):
        a, b = be.to_numpy(fused.mask(shape, dt, counter)), be.to_numpy(portable.mask(shape, dt, counter))
        assert a.dtype == b.dtype and np.array_equal(a, b)
    x = be.asarray(np.random.default_rng(0).normal(size=shape), dtype=dt)
    def relu():
        layer = nn.ReLU()
        nn.standalone(layer, shape[1], backend=be, dtype=dtype)
        return layer

    relu_f, relu_p = relu(), _portable(monkeypatch, relu)
    for u, v in zip(relu_f.forward(x), relu_p.forward(x)):
        assert np.array_equal(be.to_numpy(u), be.to_numpy(v))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype,rtol", [("float32", 1e-5), ("float64", 1e-13)])
def test_fused_losses_match_portable(cupy_backend, dtype, rtol):
    be = cupy_backend
    rng = np.random.default_rng(1)
    z1 = be.asarray(rng.normal(scale=30, size=(64, 1)), dtype=dtype)
    y1 = be.asarray(rng.integers(0, 2, size=(64, 1)), dtype=dtype)
    zk = be.asarray(rng.normal(scale=30, size=(64, 10)), dtype=dtype)
    yk = be.asarray(np.eye(10)[rng.integers(0, 10, size=64)], dtype=dtype)
    kernels = backends.fast_path(be, "binary_cross_entropy"), backends.fast_path(be, "softmax_cross_entropy")
    for kernel, ref, z, y in ((kernels[0], losses.binary_cross_entropy, z1, y1),
                              (kernels[1], losses.softmax_cross_entropy, zk, yk)):
        (v1, g1), (v2, g2) = kernel(z, y), ref(be.xp, z, y)
        np.testing.assert_allclose(be.to_numpy(v1), be.to_numpy(v2), rtol=rtol)
        np.testing.assert_allclose(be.to_numpy(g1), be.to_numpy(g2), rtol=rtol, atol=rtol * 1e-3)
        assert g1.dtype == z.dtype and v1.dtype == z.dtype


@pytest.mark.gpu
@pytest.mark.parametrize("dtype,rtol", [("float32", 1e-4), ("float64", 1e-9)])
def test_training_with_and_without_fast_paths(cupy_backend, monkeypatch, dtype, rtol):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(400, 4))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)

    def run():
        model = xpnet.MLP([4, 16, 8, 1], dropout=0.1, backend="cupy", dtype=dtype, seed=3)
        hist = xpnet.fit(model, X, y, epochs=8, batch_size=32, l2=1e-3)
        return np.array(hist["step_loss"]), model.backend.to_numpy(model.params)

    fast_loss, fast_params = run()
    slow_loss, slow_params = _portable(monkeypatch, run)
    assert len(fast_loss) == 8 * 13
    dev = np.max(np.abs(fast_loss - slow_loss) / np.abs(slow_loss))
    print(f"fast vs portable cupy {dtype}: max relative step-loss deviation {dev:.3e}")
    assert dev < rtol
    np.testing.assert_allclose(fast_params, slow_params, rtol=rtol * 10, atol=rtol)
