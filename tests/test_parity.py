"""Cross-backend parity: every backend against NumPy, same seed.

Bit-identical: initial weights, dropout masks, shuffles (through the step losses).
Training curves: equal to float tolerance (1e-9 relative in float64, 1e-4 in float32)
over >= 200 Adam steps with dropout. The measured worst deviations are printed
(run with ``-s``) and recorded as ``record_property`` entries (``--junitxml``).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import backends
import xpnet
from tests.helpers import assert_close, assert_equal, to_numpy

STEP_RTOL = {"float64": 1e-9, "float32": 1e-4}
PARAM_TOL = {"float64": dict(rtol=1e-9, atol=1e-12), "float32": dict(rtol=1e-4, atol=1e-5)}
INITS = ["he_normal", "he_uniform", "glorot_normal", "glorot_uniform"]


# --------------------------------------------------------------------------- initial weights
@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_initial_weights_bit_identical(backend, dtype, init, seed):
    sizes = [5, 17, 9, 3]
    ref = xpnet.MLP(sizes, init=init, seed=seed, backend="numpy", dtype=dtype)
    model = xpnet.MLP(sizes, init=init, seed=seed, backend=backend, dtype=dtype)
    assert_equal(model.params, ref.params, backend=backend, check_dtype=False)
    assert to_numpy(model.params).dtype == np.dtype(dtype)
    # biases start at zero; weights are not degenerate
    for b in model.biases:
        assert not np.any(to_numpy(b))
    for w in model.weights:
        assert np.unique(to_numpy(w)).size == w.shape[0] * w.shape[1]


def test_initial_weights_depend_on_seed_and_layer(backend):
    a = xpnet.MLP([4, 4, 4, 4], seed=0, backend=backend)
    b = xpnet.MLP([4, 4, 4, 4], seed=1, backend=backend)
    wa = [to_numpy(w) for w in a.weights]
    assert not np.array_equal(wa[0], to_numpy(b.weights[0]))
    assert not np.array_equal(wa[0], wa[1]) and not np.array_equal(wa[1], wa[2])


# --------------------------------------------------------------------------- dropout masks
@pytest.mark.parametrize("counter", [0, 1, 2, 17, 1000])
def test_dropout_masks_bit_identical(backend, dtype, counter):
    sizes = [3, 32, 16, 2]
    ref = xpnet.MLP(sizes, dropout=[0.1, 0.5], seed=7, backend="numpy", dtype=dtype)
    model = xpnet.MLP(sizes, dropout=[0.1, 0.5], seed=7, backend=backend, dtype=dtype)
    assert len(model.dropout_layers) == 2
    for layer, ref_layer, width in zip(model.dropout_layers, ref.dropout_layers, sizes[1:-1]):
        shape = (29, width)  # 29 rows: an odd element count
        m = layer.mask(shape, model.dtype, counter)
        r = ref_layer.mask(shape, ref.dtype, counter)
        assert_equal(m, r, backend=backend, check_dtype=False)
        assert to_numpy(m).dtype == np.dtype(dtype)
        values = np.unique(to_numpy(r))
        assert values[0] == 0.0 and values[-1] == np.asarray(layer.scale, dtype=dtype)
    # the two layers use different streams
    a = to_numpy(model.dropout_layers[0].mask((64, 64), model.dtype, counter)) > 0
    b = to_numpy(model.dropout_layers[1].mask((64, 64), model.dtype, counter)) > 0
    assert not np.array_equal(a, b)


def test_training_forward_uses_counter_masks(backend):
    """The c-th training forward applies mask(c): logits equal a manual forward with that mask."""
    model = xpnet.MLP([3, 8, 1], dropout=0.3, seed=5, backend=backend, dtype="float64")
    X = np.random.default_rng(0).normal(size=(6, 3))
    drop = model.dropout_layers[0]
    for c in range(3):
        assert drop.counter == c
        z = to_numpy(model.logits(X, training=True))
        h = np.maximum(X @ to_numpy(model.weights[0]) + to_numpy(model.biases[0]), 0.0)
        h = h * to_numpy(drop.mask((6, 8), model.dtype, c))
        expected = h @ to_numpy(model.weights[1]) + to_numpy(model.biases[1])
        np.testing.assert_allclose(z, expected, rtol=1e-12, atol=1e-14)
    model.logits(X, training=False)
    assert drop.counter == 3  # inference does not advance the dropout counter


# --------------------------------------------------------------------------- training parity
def _binary_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2024)
    X = rng.normal(size=(1000, 2))
    y = ((X[:, 0] * X[:, 1] + 0.3 * rng.normal(size=1000)) > 0).astype(np.int64)
    return X, y


def _softmax_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    centers = np.array([[0.0, 2.0, 0.0, 0.0], [2.0, -1.0, 0.5, 0.0], [-2.0, -1.0, 0.0, 1.0]])
    y = rng.integers(0, 3, size=800)
    X = centers[y] + rng.normal(scale=1.2, size=(800, 4))
    return X, y


CASES = {
    # 1000 samples, 20% held out -> 800 train = 25 batches of 32, x 8 epochs = 200 steps
    "binary": dict(data=_binary_data, sizes=[2, 16, 8, 1], activation="relu",
                   fit=dict(optimizer=lambda: xpnet.Adam(lr=1e-2), epochs=8, batch_size=32,
                            validation_split=0.2, l2=1e-4)),
    # 800 samples, batch 30 -> 27 steps per epoch (last batch 20), x 8 epochs = 216 steps
    "softmax3": dict(data=_softmax_data, sizes=[4, 16, 8, 3], activation="tanh",
                     fit=dict(optimizer=lambda: xpnet.Adam(lr=5e-3), epochs=8, batch_size=30)),
}


@functools.cache
def _train(spec: str, dtype: str, case: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list, np.ndarray]:
    cfg = CASES[case]
    X, y = cfg["data"]()
    model = xpnet.MLP(cfg["sizes"], activation=cfg["activation"], dropout=0.1, seed=11,
                      backend=spec, dtype=dtype)
    kw = dict(cfg["fit"])
    kw["optimizer"] = kw["optimizer"]()
    hist = xpnet.fit(model, X, y, **kw)
    return (np.asarray(hist["step_loss"]), to_numpy(model.params).copy(),
            np.asarray(hist["loss"]), list(hist["val_loss"]), to_numpy(model.forward(X)).copy())


@pytest.mark.parametrize("case", list(CASES))
def test_training_parity(backend, dtype, case, record_property):
    ref_steps, ref_params, ref_loss, ref_val, ref_out = _train("numpy", dtype, case)
    steps, params, loss, val, out = _train(backend.spec, dtype, case)
    assert len(ref_steps) >= 200
    assert steps.shape == ref_steps.shape
    assert np.all(np.isfinite(steps))
    assert ref_steps[-25:].mean() < 0.8 * ref_steps[:25].mean()  # it actually learned

    rel = np.abs(steps - ref_steps) / np.abs(ref_steps)
    p_abs = np.abs(params - ref_params)
    p_rel = p_abs / np.maximum(np.abs(ref_params), 1e-30)
    report = (f"parity {case} {backend.spec} {dtype}: step_loss max rel {rel.max():.3g}, "
              f"params max abs {p_abs.max():.3g} max rel {p_rel.max():.3g}, "
              f"outputs max abs {np.abs(out - ref_out).max():.3g}")
    print(report)
    record_property(f"{case}-{backend.spec}-{dtype}-step_loss_max_rel", float(rel.max()))
    record_property(f"{case}-{backend.spec}-{dtype}-params_max_abs", float(p_abs.max()))

    np.testing.assert_allclose(steps, ref_steps, rtol=STEP_RTOL[dtype], atol=0)
    np.testing.assert_allclose(loss, ref_loss, rtol=STEP_RTOL[dtype], atol=0)
    assert_close(params, ref_params, **PARAM_TOL[dtype])
    assert params.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out, ref_out, rtol=10 * STEP_RTOL[dtype], atol=PARAM_TOL[dtype]["atol"])
    if ref_val[0] is not None:
        np.testing.assert_allclose(val, ref_val, rtol=STEP_RTOL[dtype], atol=0)
    else:
        assert all(v is None for v in val)


def test_training_is_reproducible_and_seed_dependent(backend):
    """Same seed twice -> identical history on one backend; another seed -> a different one."""
    X, y = _binary_data()
    runs = []
    for seed in (3, 3, 4):
        model = xpnet.MLP([2, 8, 1], dropout=0.2, seed=seed, backend=backend)
        runs.append(xpnet.fit(model, X[:256], y[:256], optimizer=xpnet.Adam(lr=1e-2), epochs=2,
                              batch_size=32)["step_loss"])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


@pytest.mark.parametrize("fit_seed", [None, 99])
def test_epoch_shuffle_is_the_documented_permutation(backend, fit_seed):
    """Epoch e visits samples in the order permutation(n, seed, STREAMS["shuffle"], e), seed
    being fit's ``seed`` or else the model's: shuffle=True equals shuffle=False on data
    pre-permuted on the host with that permutation."""
    from xpnet import random as xr

    X, y = _binary_data()
    X, y = X[:96], y[:96]
    seed = 3 if fit_seed is None else fit_seed
    np_be = backends.get("numpy")
    order = [to_numpy(xr.permutation(np_be.xp, 96, seed, xr.STREAMS["shuffle"], e)) for e in range(2)]
    a = xpnet.MLP([2, 8, 1], seed=3, backend=backend, dtype="float64")
    ha = xpnet.fit(a, X, y, optimizer=xpnet.SGD(lr=0.1), epochs=2, batch_size=32, seed=fit_seed)
    b = xpnet.MLP([2, 8, 1], seed=3, backend=backend, dtype="float64")
    hb = xpnet.fit(b, X[order[0]], y[order[0]], optimizer=xpnet.SGD(lr=0.1), epochs=1, batch_size=32,
                   shuffle=False)
    hb2 = xpnet.fit(b, X[order[1]], y[order[1]], optimizer=xpnet.SGD(lr=0.1), epochs=1, batch_size=32,
                    shuffle=False)
    np.testing.assert_allclose(ha["step_loss"], hb["step_loss"] + hb2["step_loss"], rtol=1e-13)
    assert_close(a.params, b.params, rtol=1e-13, backend=backend)
