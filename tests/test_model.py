"""MLP and fit behaviour on every backend: purity of forward, dtypes, state round trips,
input validation, batching, early stopping, validation, callbacks, output selection, views."""

from __future__ import annotations

import math

import array_api_compat
import numpy as np
import pytest

import backends
import xpnet
from tests.helpers import all_backends, assert_close, assert_equal, to_numpy


def _data(n: int = 64, d: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X[:, 0] - 0.5 * X[:, 1] > 0).astype(np.int64)
    return X, y


def _copy(backend, a):
    """An independent device copy of ``a``."""
    return backend.xp.asarray(a, copy=True)


def _one_line_value_error(fn, *args, match: str | None = None, **kwargs) -> str:
    with pytest.raises(ValueError, match=match) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert msg and "\n" not in msg, f"not a one-line message: {msg!r}"
    return msg


# --------------------------------------------------------------------------- purity
@pytest.mark.parametrize("output", ["sigmoid", "softmax", "identity"])
def test_forward_never_modifies_inputs(backend, dtype, output):
    k = 1 if output == "sigmoid" else 3
    model = xpnet.MLP([4, 8, 6, k], activation="gelu", output=output, dropout=0.3, backend=backend,
                      dtype=dtype)
    X = backend.asarray(np.random.default_rng(1).normal(size=(10, 4)), dtype=dtype)  # used as is
    X_before = _copy(backend, X)
    params_before = model.copy_params()
    for training in (False, True):
        model.forward(X, training=training)
        model.logits(X, training=training)
    model.predict(X)
    assert_equal(X, X_before, backend=backend)
    assert_equal(model.params, params_before, backend=backend)
    # NumPy input to any backend is untouched too
    Xn = np.random.default_rng(2).normal(size=(5, 4))
    Xn_before = Xn.copy()
    model.forward(Xn, training=True)
    np.testing.assert_array_equal(Xn, Xn_before)


def test_fit_and_loss_and_grads_never_modify_inputs(backend, dtype):
    Xh, yh = _data(40, 3)
    X = backend.asarray(Xh, dtype=dtype)
    y = backend.asarray(yh.astype(dtype), dtype=dtype)
    X0, y0 = _copy(backend, X), _copy(backend, y)
    model = xpnet.MLP([3, 8, 1], dropout=0.2, backend=backend, dtype=dtype)
    model.loss_and_grads(X, y, l2=0.1)
    xpnet.fit(model, X, y, epochs=2, batch_size=8, shuffle=False, validation_data=(X, y))
    xpnet.fit(model, X, y, epochs=2, batch_size=8, validation_split=0.25)
    assert_equal(X, X0, backend=backend)
    assert_equal(y, y0, backend=backend)


# --------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("output", ["sigmoid", "softmax", "identity"])
def test_dtype_is_kept_end_to_end(backend, dtype, output):
    other = "float64" if dtype == "float32" else "float32"
    k = 1 if output == "sigmoid" else 3
    model = xpnet.MLP([3, 8, k], output=output, dropout=0.1, backend=backend, dtype=dtype)
    want = backend.dtype(dtype)
    assert model.params.dtype == want and model.grads.dtype == want
    assert all(w.dtype == want for w in model.weights + model.biases)
    Xh, yh = _data(24, 3)
    if output == "softmax":
        yh = (yh + (Xh[:, 2] > 0)).astype(np.int64)
    elif output == "identity":
        yh = np.stack([Xh[:, 0], Xh[:, 1] ** 2, Xh.sum(axis=1)], axis=1)
    # inputs of the other float dtype (and integer inputs) are converted to the model's dtype
    for X in (backend.asarray(Xh, dtype=other), Xh.astype(other), np.round(Xh).astype(np.int64)):
        for out in (model.forward(X), model.logits(X), model.forward(X, training=True)):
            assert out.dtype == want
            assert array_api_compat.device(out) == backend.device
    loss, wg, bg = model.loss_and_grads(Xh.astype(other), yh, l2=1e-3)
    assert loss.dtype == want and loss.ndim == 0
    assert all(g.dtype == want for g in wg + bg)
    opt = xpnet.Adam(lr=1e-3)
    hist = xpnet.fit(model, Xh.astype(other), yh, optimizer=opt, epochs=2, batch_size=10)
    assert model.params.dtype == want and model.grads.dtype == want
    assert all(v.dtype == want for v in opt.state.values())
    assert all(isinstance(v, float) for v in hist["step_loss"] + hist["loss"])
    pred = model.predict(Xh)
    if output == "identity":
        assert pred.dtype == want
    else:
        assert pred.dtype == backend.xp.int64
    sd = model.state_dict()
    assert sd["params"] and all(a.dtype == np.dtype(dtype) for a in sd["params"].values())


# --------------------------------------------------------------------------- state_dict
def test_state_dict_round_trip_same_backend(backend, dtype):
    Xh, yh = _data(48, 3)
    model = xpnet.MLP([3, 8, 5, 1], dropout=0.2, backend=backend, dtype=dtype, seed=4)
    xpnet.fit(model, Xh, yh, epochs=3, batch_size=16, optimizer=xpnet.Adam(lr=1e-2))
    state = model.state_dict()
    assert state["dropout_counters"] == [9, 9]
    clone = xpnet.MLP.from_state_dict(state, backend=backend)
    assert clone.backend == backend and clone.dtype == model.dtype
    assert_equal(clone.params, model.params, backend=backend)
    assert_equal(clone.forward(Xh), model.forward(Xh), backend=backend)
    assert_equal(clone.predict(Xh), model.predict(Xh), backend=backend)
    # the dropout counters come along: the next training forward uses the same masks
    assert_equal(clone.forward(Xh, training=True), model.forward(Xh, training=True), backend=backend)
    # load_state_dict into a differently initialised model of the same shape
    other = xpnet.MLP([3, 8, 5, 1], dropout=0.2, backend=backend, dtype=dtype, seed=99)
    other.load_state_dict(state)
    assert_equal(other.params, model.params, backend=backend)


def test_state_dict_is_a_snapshot(backend):
    """state_dict() holds copies: training (or any in-place change) afterwards leaves it alone,
    and changing the state does not change the model."""
    Xh, yh = _data(48, 3)
    model = xpnet.MLP([3, 8, 1], backend=backend, seed=4)
    state = model.state_dict()
    before = [a.copy() for a in state["params"].values()]
    xpnet.fit(model, Xh, yh, epochs=1, batch_size=16, optimizer=xpnet.SGD(lr=0.5))
    model.params[...] = 7.0
    for a, b in zip(before, state["params"].values()):
        np.testing.assert_array_equal(b, a)
    state["params"]["0.W"][...] = -3.0
    assert not np.any(to_numpy(model.weights[0]) == -3.0)


def test_state_dict_round_trip_across_backends(dtype):
    chain = [s for s in ("numpy", "strict:device1", "torch:cpu") if s in {b.spec for b in all_backends()}]
    chain += [b.spec for b in all_backends() if b.on_gpu]
    if len(chain) < 2:
        pytest.skip("needs at least two backends")
    Xh, yh = _data(64, 3)
    Xh3 = Xh
    y3 = (yh + (Xh[:, 2] > 0.5)).astype(np.int64)
    model = xpnet.MLP([3, 16, 3], activation="tanh", dropout=0.1, backend=chain[0], dtype=dtype, seed=2)
    xpnet.fit(model, Xh3, y3, epochs=3, batch_size=16, optimizer=xpnet.Adam(lr=1e-2))
    ref_params = to_numpy(model.params).copy()
    ref_pred = to_numpy(model.predict(Xh3))
    ref_proba = to_numpy(model.forward(Xh3))
    state = model.state_dict()
    for spec in chain[1:]:
        model = xpnet.MLP.from_state_dict(state, backend=spec)
        assert model.backend.spec == spec
        # parameters travel bit for bit
        assert_equal(model.params, ref_params, backend=model.backend)
        assert_equal(model.predict(Xh3), ref_pred, backend=model.backend)
        assert_close(model.forward(Xh3), ref_proba, backend=model.backend,
                     rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-7 if dtype == "float32" else 1e-15)
        state = model.state_dict()  # hand on this backend's state
    assert state["dropout_counters"] == [12]
    # a dtype change on load
    m64 = xpnet.MLP.from_state_dict(state, backend="numpy", dtype="float64")
    np.testing.assert_array_equal(to_numpy(m64.params), ref_params.astype(np.float64))


def test_load_state_dict_rejects_wrong_shapes(backend):
    state = xpnet.MLP([3, 8, 1], backend="numpy").state_dict()
    _one_line_value_error(xpnet.MLP([3, 9, 1], backend=backend).load_state_dict, state)


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize("sizes", [[2], [], [2, 0, 1], [2, "a", 1], [2, 1.5, 1], [2, -3, 1], "21", None])
def test_bad_sizes(sizes):
    _one_line_value_error(xpnet.MLP, sizes, match="sizes")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(activation="swish"), "activation"),
        (dict(activation="softmax"), "activation"),
        (dict(output="relu"), "output"),
        (dict(init="lecun"), "init"),
        (dict(dropout=1.0), "dropout"),
        (dict(dropout=-0.1), "dropout"),
        (dict(dropout=0.999999), "dropout"),  # < 1, but rounds to 1 at the 2**-16 resolution
        (dict(dropout=[0.1]), "dropout"),  # two hidden layers need two rates
        (dict(dtype="float16"), "dtype"),
        (dict(seed=-1), "seed"),
    ],
)
def test_bad_constructor_arguments(backend, kwargs, match):
    _one_line_value_error(xpnet.MLP, [2, 4, 4, 1], backend=backend, match=match, **kwargs)


def test_bad_forward_inputs(backend):
    model = xpnet.MLP([3, 4, 1], backend=backend)
    _one_line_value_error(model.forward, np.zeros((5, 2)), match="features")
    _one_line_value_error(model.forward, np.zeros(3), match="2-D")
    _one_line_value_error(model.predict, np.zeros((2, 3, 1)), match="2-D")
    _one_line_value_error(model.forward, backend.asarray(np.zeros((5, 4))), match="features")


def test_bad_fit_inputs(backend):
    X, y = _data(20, 3)
    model = xpnet.MLP([3, 4, 1], backend=backend)
    fit = xpnet.fit
    _one_line_value_error(fit, model, X[:, :2], y, match="features")
    _one_line_value_error(fit, model, X[:, 0], y, match="2-D")
    _one_line_value_error(fit, model, X, y[:-1], match="length")
    _one_line_value_error(fit, model, X, np.where(y == 1, 2, 0), match="0/1")
    Xn = X.copy()
    Xn[3, 1] = np.nan
    _one_line_value_error(fit, model, Xn, y, match="NaN")
    Xi = X.copy()
    Xi[0, 0] = np.inf
    _one_line_value_error(fit, model, Xi, y)
    _one_line_value_error(fit, model, X, y, epochs=0, match="epochs")
    _one_line_value_error(fit, model, X, y, batch_size=0, match="batch_size")
    _one_line_value_error(fit, model, X, y, validation_split=1.0, match="validation_split")
    _one_line_value_error(fit, model, X, y, validation_split=-0.1, match="validation_split")
    _one_line_value_error(fit, model, X, y, early_stopping=True, match="validation")
    _one_line_value_error(fit, model, X[:0], y[:0])
    _one_line_value_error(fit, model, X, y, l2=-1.0, match="l2")
    _one_line_value_error(fit, model, X, y, optimizer="adam", match="optimizer")
    # an explicit sigmoid output rejects non-binary float targets instead of switching to regression
    sig = xpnet.MLP([3, 4, 1], output="sigmoid", backend=backend)
    _one_line_value_error(fit, sig, X, y * 0.5, match="0/1")
    # nothing was trained by the failed calls
    assert_equal(model.params, xpnet.MLP([3, 4, 1], backend=backend).params, backend=backend)


def test_bad_softmax_labels(backend):
    X, _ = _data(20, 3)
    model = xpnet.MLP([3, 4, 3], backend=backend)
    labels = np.arange(20) % 3
    _one_line_value_error(xpnet.fit, model, X, np.where(labels == 2, 3, labels), match="outside")
    _one_line_value_error(xpnet.fit, model, X, np.where(labels == 2, -1, labels), match="outside")
    _one_line_value_error(model.targets, labels + 0.5, match="integer")
    _one_line_value_error(model.targets, np.eye(4)[labels], match="shape")
    # one-hot targets and integer-valued floats are accepted
    np.testing.assert_array_equal(to_numpy(model.targets(labels.astype(np.float64))), np.eye(3)[labels])
    np.testing.assert_array_equal(to_numpy(model.targets(np.eye(3)[labels])), np.eye(3)[labels])


# --------------------------------------------------------------------------- batching
def test_batch_larger_than_data_is_one_batch(backend):
    X, y = _data(20, 3)
    hists = []
    for bs in (1000, 20):
        model = xpnet.MLP([3, 4, 1], backend=backend, dtype="float64")
        hists.append(xpnet.fit(model, X, y, epochs=3, batch_size=bs, optimizer=xpnet.SGD(lr=0.1)))
    assert len(hists[0]["step_loss"]) == 3
    np.testing.assert_allclose(hists[0]["step_loss"], hists[1]["step_loss"], rtol=1e-14)


@pytest.mark.parametrize("n, batch", [(50, 16), (33, 32), (7, 3), (64, 64)])
def test_last_partial_batch_is_used(backend, n, batch):
    X, y = _data(n, 3)
    epochs = 3
    model = xpnet.MLP([3, 4, 1], backend=backend, dtype="float64")
    hist = xpnet.fit(model, X, y, epochs=epochs, batch_size=batch, optimizer=xpnet.Adam(lr=1e-2))
    steps = math.ceil(n / batch)
    assert len(hist["step_loss"]) == steps * epochs
    last = n - (steps - 1) * batch
    for e in range(epochs):
        s = hist["step_loss"][e * steps:(e + 1) * steps]
        assert hist["loss"][e] == pytest.approx((sum(s[:-1]) * batch + s[-1] * last) / n, rel=1e-12)


def test_partial_batch_updates_match_manual_steps(backend):
    """shuffle=False, n=10, batch 4: steps on rows 0-3, 4-7 and then the last two rows 8-9."""
    X, y = _data(10, 3)
    model = xpnet.MLP([3, 5, 1], backend=backend, dtype="float64", seed=1)
    manual = xpnet.MLP([3, 5, 1], backend=backend, dtype="float64", seed=1)
    hist = xpnet.fit(model, X, y, epochs=1, batch_size=4, shuffle=False, optimizer=xpnet.SGD(lr=0.5))
    opt = xpnet.SGD(lr=0.5)
    losses = []
    for lo, hi in ((0, 4), (4, 8), (8, 10)):
        loss, _, _ = manual.loss_and_grads(X[lo:hi], y[lo:hi])
        losses.append(float(loss))
        opt.step(manual.params, manual.grads)
    np.testing.assert_allclose(hist["step_loss"], losses, rtol=1e-13)
    assert_close(model.params, manual.params, rtol=1e-13, backend=backend)


# --------------------------------------------------------------------------- early stopping
def _noise_problem(seed: int = 0):
    """Random labels: the validation loss rises as soon as the net starts memorising."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(160, 5))
    y = rng.integers(0, 2, size=160)
    return X[:120], y[:120], X[120:], y[120:]


def test_early_stopping_restores_best(backend):
    X, y, Xv, yv = _noise_problem()
    model = xpnet.MLP([5, 64, 64, 1], backend=backend, dtype="float64", seed=0)
    patience = 4
    hist = xpnet.fit(model, X, y, validation_data=(Xv, yv), early_stopping=True, patience=patience,
                     epochs=300, batch_size=20, optimizer=xpnet.Adam(lr=1e-2))
    assert hist["stopped_early"] is True
    n_epochs = len(hist["epoch"])
    assert n_epochs < 300
    val = hist["val_loss"]
    best = hist["best_epoch"]  # numbered from 1
    assert best == int(np.argmin(val)) + 1 == hist["epoch"][int(np.argmin(val))]
    assert n_epochs == best + patience
    # the restored parameters give exactly the best validation loss
    loss, acc = xpnet.evaluate(model, model.as_input(Xv), model.targets(yv))
    assert loss == pytest.approx(val[best - 1], rel=1e-12)
    assert acc == pytest.approx(hist["val_accuracy"][best - 1], rel=1e-12)
    assert loss < val[-1]


def test_early_stopping_without_restore_keeps_last(backend):
    X, y, Xv, yv = _noise_problem()
    model = xpnet.MLP([5, 64, 64, 1], backend=backend, dtype="float64", seed=0)
    hist = xpnet.fit(model, X, y, validation_data=(Xv, yv), early_stopping=True, patience=4,
                     restore_best=False, epochs=300, batch_size=20, optimizer=xpnet.Adam(lr=1e-2))
    assert hist["stopped_early"] is True
    loss, _ = xpnet.evaluate(model, model.as_input(Xv), model.targets(yv))
    assert loss == pytest.approx(hist["val_loss"][-1], rel=1e-12)
    assert loss > min(hist["val_loss"])


def test_min_delta_and_patience_run_to_completion_when_improving(backend):
    X, y = _data(100, 3)
    model = xpnet.MLP([3, 8, 1], backend=backend, seed=0)
    hist = xpnet.fit(model, X, y, validation_split=0.2, early_stopping=True, patience=50, epochs=5,
                     batch_size=20, optimizer=xpnet.Adam(lr=1e-3))
    assert hist["stopped_early"] is False and len(hist["epoch"]) == 5


# --------------------------------------------------------------------------- validation split
def test_validation_split_records_val_metrics(backend):
    X, y = _data(100, 3)
    model = xpnet.MLP([3, 8, 1], backend=backend, seed=0)
    info = {}

    class Spy:
        def on_train_begin(self, i):
            info.update(i)

    hist = xpnet.fit(model, X, y, validation_split=0.25, epochs=4, batch_size=25, callbacks=[Spy()])
    assert info["n_train"] == 75 and info["n_val"] == 25 and info["steps_per_epoch"] == 3
    assert len(hist["val_loss"]) == 4 and len(hist["val_accuracy"]) == 4
    assert all(isinstance(v, float) and v > 0 for v in hist["val_loss"])
    assert all(0.0 <= a <= 1.0 for a in hist["val_accuracy"])
    assert len(hist["step_loss"]) == 4 * 3
    # without validation the entries are None
    hist = xpnet.fit(model, X, y, epochs=2, batch_size=25)
    assert hist["val_loss"] == [None, None] and hist["val_accuracy"] == [None, None]


def test_validation_split_matches_validation_data(backend):
    """The held-out subset is the documented permutation prefix: passing it explicitly
    as validation_data gives the same validation losses."""
    from xpnet import random as xr

    X, y = _data(100, 3)
    perm = to_numpy(xr.permutation(backends.get("numpy").xp, 100, 0, xr.STREAMS["split"], 0))
    a = xpnet.MLP([3, 8, 1], backend=backend, seed=0, dtype="float64")
    ha = xpnet.fit(a, X, y, validation_split=0.2, epochs=2, batch_size=16)
    b = xpnet.MLP([3, 8, 1], backend=backend, seed=0, dtype="float64")
    hb = xpnet.fit(b, X[perm[20:]], y[perm[20:]], validation_data=(X[perm[:20]], y[perm[:20]]), epochs=2,
                   batch_size=16)
    np.testing.assert_allclose(ha["val_loss"], hb["val_loss"], rtol=1e-12)
    np.testing.assert_allclose(ha["step_loss"], hb["step_loss"], rtol=1e-12)


# --------------------------------------------------------------------------- callbacks
def test_callbacks_called_each_epoch_and_can_stop(backend):
    X, y = _data(40, 3)
    model = xpnet.MLP([3, 4, 1], backend=backend)
    seen = []
    events = []

    class Recorder:
        def on_train_begin(self, info):
            events.append("begin")

        def on_epoch_end(self, epoch, logs):
            events.append(epoch)
            assert set(logs) >= {"loss", "accuracy", "val_loss", "lr"}

        def on_train_end(self, history):
            events.append("end")

    hist = xpnet.fit(model, X, y, epochs=5, batch_size=10, callbacks=[lambda e, logs: seen.append(e), Recorder()])
    assert seen == [1, 2, 3, 4, 5]  # epochs are numbered from 1, as in the history
    assert events == ["begin", 1, 2, 3, 4, 5, "end"]
    assert len(hist["epoch"]) == 5 and hist["stopped_early"] is False

    seen.clear()
    hist = xpnet.fit(model, X, y, epochs=10, batch_size=10, callbacks=[lambda e, logs: seen.append(e) or e == 3])
    assert seen == [1, 2, 3]
    assert hist["epoch"] == [1, 2, 3] and len(hist["step_loss"]) == 3 * 4


# --------------------------------------------------------------------------- inference batching
@pytest.mark.parametrize("output", ["sigmoid", "softmax", "identity"])
def test_predictions_do_not_depend_on_inference_batch(backend, dtype, output):
    k = 1 if output == "sigmoid" else 4
    model = xpnet.MLP([6, 32, 16, k], output=output, dropout=0.2, backend=backend, dtype=dtype, seed=3)
    X = np.random.default_rng(5).normal(size=(101, 6))
    whole = to_numpy(model.forward(X))
    parts = np.concatenate([to_numpy(model.forward(X[:37])), to_numpy(model.forward(X[37:]))])
    singles = np.concatenate([to_numpy(model.forward(X[i:i + 1])) for i in range(0, 101, 10)])
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(parts, whole, **tol)
    np.testing.assert_allclose(singles, whole[::10], **tol)
    if output == "identity":
        return
    # labels agree wherever the decision is not a near tie
    split = np.concatenate([to_numpy(model.predict(X[:50])), to_numpy(model.predict(X[50:]))])
    top2 = np.sort(whole, axis=1)[:, -2:] if k > 1 else np.concatenate([1 - whole, whole], axis=1)
    clear = np.abs(top2[:, -1] - top2[:, 0]) > 1e-3
    assert clear.sum() > 90
    np.testing.assert_array_equal(split[clear], to_numpy(model.predict(X))[clear])


# --------------------------------------------------------------------------- output selection
def test_auto_output(backend):
    X, y = _data(30, 3)
    m = xpnet.MLP([3, 4, 1], backend=backend)
    assert m.output == "sigmoid"
    xpnet.fit(m, X, y.astype(np.float64), epochs=1)  # integer-valued floats: still classification
    assert m.output == "sigmoid"
    r = xpnet.MLP([3, 4, 1], backend=backend)
    hist = xpnet.fit(r, X, X[:, 0] * 2.5 + 0.1, epochs=2)
    assert r.output == "identity" and all(a is None for a in hist["accuracy"])
    pred = to_numpy(r.predict(X))
    assert pred.shape == (30, 1) and pred.dtype == np.float32
    np.testing.assert_array_equal(pred, to_numpy(r.forward(X)))  # identity: values, no squashing
    s = xpnet.MLP([3, 4, 3], backend=backend)
    assert s.output == "softmax"
    xpnet.fit(s, X, X * 0.3, epochs=1)  # continuous (n, 3) targets
    assert s.output == "identity"
    # an explicit output is never switched
    e = xpnet.MLP([3, 4, 1], output="sigmoid", backend=backend)
    xpnet.fit(e, X, y, epochs=1)
    assert e.output == "sigmoid"


# --------------------------------------------------------------------------- views
def test_weights_are_views_of_params(backend, dtype):
    model = xpnet.MLP([3, 5, 4, 2], backend=backend, dtype=dtype)
    xp = backend.xp
    n = model.n_params
    assert n == 3 * 5 + 5 * 4 + 4 * 2 + 5 + 4 + 2
    # in-place change of the flat buffer shows in every view
    model.params[...] = xp.arange(n, dtype=model.dtype, device=backend.device)
    flat = np.arange(n, dtype=dtype)
    off = 0
    for w in model.weights:
        a, b = w.shape
        np.testing.assert_array_equal(to_numpy(w), flat[off:off + a * b].reshape(a, b))
        off += a * b
    for bias in model.biases:
        np.testing.assert_array_equal(to_numpy(bias), flat[off:off + bias.shape[0]])
        off += bias.shape[0]
    assert off == n
    # in-place arithmetic on params (what the optimizers do)
    model.params *= 2.0
    np.testing.assert_array_equal(to_numpy(model.weights[1])[0], 2 * flat[15:19])
    # and the other way round: writing into a view writes into params
    model.biases[2][...] = -1.0
    np.testing.assert_array_equal(to_numpy(model.params)[-2:], [-1.0, -1.0])
    model.set_params(xp.zeros_like(model.params))
    assert not np.any(to_numpy(model.weights[0]))
    # gradients: views of grads
    X, y = _data(8, 3)
    _, wg, bg = model.loss_and_grads(X, y)  # softmax output, labels 0/1
    g = to_numpy(model.grads)
    np.testing.assert_array_equal(to_numpy(wg[0]).ravel(), g[:15])
    np.testing.assert_array_equal(to_numpy(bg[-1]), g[-2:])


def test_optimizer_updates_reach_the_layers(backend):
    """After fit, forward uses the trained params (the layers hold views, not copies)."""
    X, y = _data(40, 3)
    model = xpnet.MLP([3, 6, 1], backend=backend, dtype="float64", seed=1)
    w0 = to_numpy(model.weights[0]).copy()
    xpnet.fit(model, X, y, epochs=2, batch_size=10, optimizer=xpnet.SGD(lr=0.5))
    W0, b0 = to_numpy(model.weights[0]), to_numpy(model.biases[0])
    W1, b1 = to_numpy(model.weights[1]), to_numpy(model.biases[1])
    assert not np.array_equal(w0, W0)
    expected = np.maximum(X @ W0 + b0, 0) @ W1 + b1
    np.testing.assert_allclose(to_numpy(model.logits(X)), expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(W0.ravel(), to_numpy(model.params)[:18])
