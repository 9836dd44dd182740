"""Cross-backend parity of composable networks (BatchNorm1d, Residual, nested containers, Dropout).

Bit-identical on every backend vs NumPy: initial parameters and buffers, dropout masks of every
Dropout layer (at several counters), and the masks a training forward applies. Training curves of a
BatchNorm + Residual network with dropout over >= 200 Adam steps: step losses within 1e-9 relative
of NumPy's in float64 and 1e-4 in float32 (the tolerances of test_parity), parameters and running
statistics close. The measured worst deviation is recorded with ``record_property``.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import xpnet
from backends import Backend
from tests.helpers import assert_close, assert_equal, to_numpy
from xpnet import nn
from xpnet.nn import BatchNorm1d, Dense, Dropout, Residual, Sequential

STEP_RTOL = {"float64": 1e-9, "float32": 1e-4}
PARAM_TOL = {"float64": dict(rtol=1e-9, atol=1e-12), "float32": dict(rtol=1e-3, atol=1e-4)}


def bn_residual(backend="numpy", dtype="float32", seed=4) -> xpnet.Network:
    return xpnet.Network([
        Dense(5, 32, "relu"), BatchNorm1d(32), Dropout(0.1),
        Residual([Dense(32, 32, "gelu"), BatchNorm1d(32), Dense(32, 32)]), Dropout(0.2),
        Residual([Dense(32, 16, "tanh")]),  # projection shortcut
        Dense(16, 3)], seed=seed, backend=backend, dtype=dtype)


ARCHITECTURES = {
    "bn-residual": bn_residual,
    "nested": lambda backend, dtype, seed=4: xpnet.Network([
        Dense(5, 12, "leaky_relu"), Dropout(0.3),
        Sequential([Residual(Sequential([Dense(12, 12, "sigmoid"), BatchNorm1d(12), Dropout(0.5)]),
                             shortcut=[Dense(12, 12), nn.Tanh()]), BatchNorm1d(12)]),
        Dense(12, 1)], seed=seed, backend=backend, dtype=dtype),
    "mlp-batchnorm-residual": lambda backend, dtype, seed=4: xpnet.MLP(
        [5, 16, 16, 16, 2], activation="gelu", dropout=0.25, batchnorm=True, residual=True, init="he_uniform",
        seed=seed, backend=backend, dtype=dtype),
}


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_initial_state_and_masks_bit_identical(backend: Backend, dtype: str, arch: str) -> None:
    make = ARCHITECTURES[arch]
    ref, net = make("numpy", dtype), make(backend, dtype)
    assert_equal(net.params, ref.params, backend=backend, check_dtype=False)
    assert_equal(net.buffers, ref.buffers, backend=backend, check_dtype=False)
    assert net.params.dtype == backend.dtype(dtype)
    assert net.streams == ref.streams and len(net.dropout_layers) >= 2
    assert net.layout.buffers, "no BatchNorm buffers"
    for layer, ref_layer in zip(net.dropout_layers, ref.dropout_layers):
        for counter in (0, 1, 250):
            m = layer.mask((23, 12), net.dtype, counter)  # 276 values: not a multiple of 4 or 8
            assert_equal(m, ref_layer.mask((23, 12), ref.dtype, counter), backend=backend, check_dtype=False)
    # the masks a training forward applies: the same logits up to rounding, the same zeros exactly
    X = np.random.default_rng(1).normal(size=(17, 5))
    z, z_ref = to_numpy(net.logits(X, training=True)), to_numpy(ref.logits(X, training=True))
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == "float64" else dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(z, z_ref, **tol)
    assert net.counters == ref.counters == [1] * len(net.dropout_layers)
    assert_close(net.buffers, to_numpy(ref.buffers), backend=backend, check_dtype=False, **tol)


def test_other_seed_changes_everything() -> None:
    a, b = bn_residual(seed=4), bn_residual(seed=5)
    assert not np.array_equal(to_numpy(a.params), to_numpy(b.params))
    assert not np.array_equal(to_numpy(a.dropout_layers[0].mask((8, 32), a.dtype, 0)),
                              to_numpy(b.dropout_layers[0].mask((8, 32), b.dtype, 0)))


# ============================================================== training curves
def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(416, 5))
    return X, (X[:, 0] + X[:, 1] ** 2 > 1).astype(np.int64) + (X[:, 2] > 0.5)


def _train(backend, dtype):
    net = bn_residual(backend, dtype)
    X, y = _data()
    history = xpnet.fit(net, X, y, optimizer=xpnet.Adam(lr=1e-2), epochs=18, batch_size=32,
                        validation_split=0.125, l2=1e-4)
    return net, history


@functools.cache
def _reference(dtype: str):
    net, history = _train("numpy", dtype)
    return np.array(to_numpy(net.params)), np.array(to_numpy(net.buffers)), history


def test_training_curves_match_numpy(backend: Backend, dtype: str, record_property) -> None:
    ref_params, ref_buffers, ref = _reference(dtype)
    net, history = _train(backend, dtype)
    steps = np.array(history["step_loss"])
    ref_steps = np.array(ref["step_loss"])
    assert len(steps) == len(ref_steps) >= 200
    assert net.counters == [len(steps)] * 2
    rel = np.abs(steps - ref_steps) / np.abs(ref_steps)
    record_property("max_rel_step_loss_deviation", float(rel.max()))
    assert rel.max() <= STEP_RTOL[dtype], f"step {int(rel.argmax())}: relative deviation {rel.max():.3g}"
    np.testing.assert_allclose(history["val_loss"], ref["val_loss"], rtol=STEP_RTOL[dtype])
    np.testing.assert_allclose(to_numpy(net.params), ref_params, **PARAM_TOL[dtype])
    np.testing.assert_allclose(to_numpy(net.buffers), ref_buffers, **PARAM_TOL[dtype])
    assert np.mean(ref_steps[-13:]) < 0.7 * np.mean(ref_steps[:13])  # it learned something
    if backend.spec == "numpy":
        assert history["step_loss"] == ref["step_loss"]  # deterministic on one backend
