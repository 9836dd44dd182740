"""The bad-input contract (docs/bad_inputs.md): each bad input gets one clear line, or the documented behaviour.

Every row of the table in docs/bad_inputs.md has a case here (same ids).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import backends
import xpnet
from tests.helpers import all_backends, assert_close, assert_equal, to_numpy

try:
    import torch
except ImportError:  # pragma: no cover - torch is optional
    torch = None

SPECS = [b.spec for b in all_backends()]
NAN, INF = float("nan"), float("inf")
RNG = np.random.default_rng(0)
X = RNG.normal(size=(20, 3))
Y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)  # labels 0..2


def clf(backend="numpy", **kw):
    return xpnet.MLP([3, 4, 3], backend=backend, **kw)


def with_nan(a, value=NAN):
    a = np.array(a, dtype=float)
    a.flat[3] = value
    return a


# (id, call, message fragment): each raises ValueError with a one-line message containing the fragment.
REJECTED = [
    # MLP construction
    ("unknown-activation", lambda: xpnet.MLP([3, 1], activation="swish"), "unknown activation 'swish': use one of"),
    ("unknown-output", lambda: xpnet.MLP([3, 1], output="tanh"), "unknown output 'tanh'"),
    ("unknown-init", lambda: xpnet.MLP([3, 1], init="zeros"), "unknown init 'zeros'"),
    ("bad-sizes", lambda: xpnet.MLP([3, 0, 1]), "sizes must be a list of at least two positive integers"),
    ("one-size", lambda: xpnet.MLP([3]), "sizes must be a list of at least two positive integers"),
    ("bad-dtype", lambda: xpnet.MLP([3, 1], dtype="float16"), "unknown dtype 'float16': use one of"),
    ("negative-seed", lambda: xpnet.MLP([3, 1], seed=-1), "seed must be a non-negative int"),
    ("nan-dropout", lambda: xpnet.MLP([3, 4, 1], dropout=NAN), "dropout must be a rate in [0, 1)"),
    ("negative-dropout", lambda: xpnet.MLP([3, 4, 1], dropout=-0.1), "dropout must be a rate in [0, 1)"),
    ("dropout-one", lambda: xpnet.MLP([3, 4, 1], dropout=1.0), "dropout must be a rate in [0, 1)"),
    # data given to fit
    ("nan-in-X", lambda: xpnet.fit(clf(), with_nan(X), Y), "X contains NaN or infinity"),
    ("inf-in-X", lambda: xpnet.fit(clf(), with_nan(X, INF), Y), "X contains NaN or infinity"),
    ("nan-in-y-labels", lambda: xpnet.fit(clf(), X, with_nan(Y)), "y contains NaN or infinity"),
    ("inf-in-y-binary", lambda: xpnet.fit(xpnet.MLP([3, 1]), X, with_nan(Y > 0, INF)), "y contains NaN or infinity"),
    ("nan-in-y-regression", lambda: xpnet.fit(xpnet.MLP([3, 1]), X, with_nan(X[:, 0])), "y contains NaN or infinity"),
    ("nan-in-validation", lambda: xpnet.fit(clf(), X, Y, validation_data=(X, with_nan(Y))),
     "y_val contains NaN or infinity"),
    ("length-mismatch", lambda: xpnet.fit(clf(), X, Y[:15]),
     "X and y have different lengths: 20 samples in X, 15 in y"),
    ("X-1d", lambda: xpnet.fit(clf(), X[:, 0], Y), "X must be 2-D (samples, features), got shape (20,) (use X.reshape"),
    ("X-3d", lambda: xpnet.fit(clf(), X[None], Y), "X must be 2-D (samples, features), got shape (1, 20, 3)"),
    ("wrong-features-fit", lambda: xpnet.fit(clf(), X[:, :2], Y), "X has 2 features but the model expects 3"),
    ("wrong-features-predict", lambda: clf().predict(X[:, :2]), "X has 2 features but the model expects 3"),
    ("empty-data", lambda: xpnet.fit(clf(), X[:0], Y[:0]), "X is empty: fit needs at least one sample"),
    ("string-labels", lambda: xpnet.fit(clf(), X, np.array(["a", "b"] * 10)), "y holds strings (dtype <U1): encode"),
    ("string-labels-list", lambda: xpnet.fit(clf(), X, ["cat", "dog"] * 10), "xpnet.XPNetClassifier"),
    ("string-X", lambda: clf().predict([["a", "b", "c"]]), "X holds strings (dtype <U1): xpnet needs real numbers"),
    ("object-X", lambda: clf().predict(np.array([[1.0, 2.0, None]], dtype=object)), "X holds Python objects"),
    ("complex-X", lambda: clf().predict(X.astype(complex)), "X holds complex numbers"),
    ("ragged-X", lambda: clf().predict([[1, 2, 3], [1, 2]]), "X could not be converted to a numpy array"),
    ("label-too-big", lambda: xpnet.fit(clf(), X, Y + 3), "y has labels outside [0, 2] (the model has 3 output units)"),
    ("negative-label", lambda: xpnet.fit(clf(), X, Y - 1), "y has labels outside [0, 2]"),
    ("binary-label-2", lambda: xpnet.fit(xpnet.MLP([3, 1]), X, Y), "y must hold 0/1 labels for a sigmoid output"),
    ("fractional-labels-softmax", lambda: xpnet.fit(clf(output="softmax"), X, Y + 0.5),
     "y must hold integer class labels for a softmax output"),
    ("fractional-labels-auto", lambda: xpnet.fit(clf(), X, Y + 0.5),
     "y has shape (20,) but the model has 3 output unit(s): expected (n, 3) (regression targets need one column"),
    ("one-hot-wrong-width", lambda: xpnet.fit(clf(), X, np.eye(4)[Y]), "y has shape (20, 4) but the model has 3"),
    # fit's settings
    ("optimizer-string", lambda: xpnet.fit(clf(), X, Y, optimizer="adam"), "optimizer must be an xpnet optimizer"),
    ("unknown-loss", lambda: xpnet.fit(clf(), X, Y, loss="hinge"), "unknown loss 'hinge'"),
    ("loss-output-mismatch", lambda: xpnet.fit(clf(), X, Y, loss="bce"), "loss 'bce' works on sigmoid outputs"),
    ("zero-epochs", lambda: xpnet.fit(clf(), X, Y, epochs=0), "epochs must be a positive integer, got 0"),
    ("fractional-batch", lambda: xpnet.fit(clf(), X, Y, batch_size=2.5), "batch_size must be a positive integer"),
    ("zero-batch", lambda: xpnet.fit(clf(), X, Y, batch_size=0), "batch_size must be a positive integer"),
    ("zero-patience", lambda: xpnet.fit(clf(), X, Y, patience=0), "patience must be a positive integer"),
    ("negative-l2", lambda: xpnet.fit(clf(), X, Y, l2=-1e-3), "l2 must be a finite number >= 0"),
    ("nan-l2", lambda: xpnet.fit(clf(), X, Y, l2=NAN), "l2 must be a finite number >= 0"),
    ("nan-min-delta", lambda: xpnet.fit(clf(), X, Y, min_delta=NAN), "min_delta must be a finite number >= 0"),
    ("negative-min-delta", lambda: xpnet.fit(clf(), X, Y, min_delta=-1), "min_delta must be a finite number >= 0"),
    ("nan-validation-split", lambda: xpnet.fit(clf(), X, Y, validation_split=NAN),
     "validation_split must be a finite number in [0, 1)"),
    ("validation-split-one", lambda: xpnet.fit(clf(), X, Y, validation_split=1.0),
     "validation_split must be a finite number in [0, 1)"),
    ("validation-split-empty", lambda: xpnet.fit(clf(), X, Y, validation_split=0.01), "leaves 0 validation"),
    ("early-stopping-no-val", lambda: xpnet.fit(clf(), X, Y, early_stopping=True), "early_stopping needs validation"),
    ("negative-clip-norm", lambda: xpnet.fit(clf(), X, Y, clip_norm=-1.0), "clip_norm must be a finite number > 0"),
    ("nan-clip-value", lambda: xpnet.fit(clf(), X, Y, clip_value=NAN), "clip_value must be a finite number > 0"),
    # optimizers and schedules
    ("unknown-optimizer", lambda: xpnet.make_optimizer("adamax", 1e-3), "unknown optimizer 'adamax': use one of"),
    ("unknown-schedule", lambda: xpnet.make_schedule("linear", 0.1, 10), "unknown schedule 'linear'"),
    ("negative-lr", lambda: xpnet.Adam(lr=-1e-3), "lr must be a finite number > 0, got -0.001"),
    ("nan-lr", lambda: xpnet.SGD(lr=NAN), "lr must be a finite number > 0, got nan"),
    ("zero-lr", lambda: xpnet.RMSProp(lr=0.0), "lr must be a finite number > 0"),
    ("string-lr", lambda: xpnet.SGD(lr="fast"), "lr must be a finite number > 0, got 'fast'"),
    ("negative-momentum", lambda: xpnet.SGD(momentum=-0.9), "momentum must be a finite number in [0, 1]"),
    ("nesterov-no-momentum", lambda: xpnet.SGD(nesterov=True), "nesterov=True needs momentum > 0"),
    ("beta1-one", lambda: xpnet.Adam(beta1=1.0), "beta1 must be a finite number in [0, 1)"),
    ("nan-beta2", lambda: xpnet.Adam(beta2=NAN), "beta2 must be a finite number in [0, 1)"),
    ("zero-eps", lambda: xpnet.Adam(eps=0.0), "eps must be a finite number > 0"),
    ("negative-weight-decay", lambda: xpnet.AdamW(weight_decay=-0.01), "weight_decay must be a finite number >= 0"),
    ("nan-rho", lambda: xpnet.RMSProp(rho=NAN), "rho must be a finite number in [0, 1]"),
    ("negative-cosine-total", lambda: xpnet.Cosine(0.1, total=0), "cosine schedule total steps must be a positive integer"),
]


@pytest.mark.parametrize("call,fragment", [pytest.param(c, f, id=i) for i, c, f in REJECTED])
def test_rejected_with_one_clear_line(call, fragment):
    with pytest.raises(ValueError) as info:
        call()
    msg = str(info.value)
    assert fragment in msg, msg
    assert "\n" not in msg and len(msg) < 400
    err = info.value  # no chained library traceback under it
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)


def test_unknown_backend_is_one_line():
    with pytest.raises(backends.BackendUnavailable, match="unknown backend name; valid names are") as info:
        xpnet.MLP([3, 1], backend="jax")
    assert "\n" not in str(info.value)


def test_nan_labels_do_not_change_the_model():
    model = clf()
    with pytest.raises(ValueError, match="y contains NaN"):
        xpnet.fit(model, X, with_nan(Y))
    assert model.output == "softmax" and model.output_auto  # not switched to regression by the NaN


@pytest.mark.parametrize("backend", [b for b in SPECS if b != "numpy"] or ["numpy"])
def test_string_labels_same_message_on_every_backend(backend):
    with pytest.raises(ValueError, match=r"y holds strings \(dtype <U3\): encode the labels"):
        xpnet.fit(clf(backend), X, np.array(["cat", "dog"] * 10))


# ------------------------------------------------------------------------------------------ mixed libraries
@pytest.mark.skipif(torch is None, reason="needs torch")
def test_fit_rejects_X_and_y_from_different_libraries():
    with pytest.raises(ValueError, match=r"X \(torch on cpu\) and y \(numpy on cpu\) come from different array "
                                         r"libraries or devices"):
        xpnet.fit(clf(), torch.tensor(X), Y)
    with pytest.raises(ValueError, match=r"X_val \(numpy on cpu\) and y_val \(torch on cpu\)"):
        xpnet.fit(clf(), X, Y, validation_data=(X, torch.tensor(Y)))


@pytest.mark.skipif("strict:device1" not in SPECS, reason="needs array-api-strict")
def test_fit_rejects_X_and_y_on_different_devices():
    strict = backends.get("strict:device1")
    cpu = backends.get("strict")
    with pytest.raises(ValueError, match="come from different array libraries or devices"):
        xpnet.fit(clf("strict"), strict.asarray(X), cpu.asarray(Y))


@pytest.mark.skipif(torch is None, reason="needs torch")
def test_fit_converts_X_and_y_from_one_other_library():
    a, b = clf(), clf()
    ha = xpnet.fit(a, torch.tensor(X), torch.tensor(Y), epochs=2)
    hb = xpnet.fit(b, X, Y, epochs=2)
    assert_equal(a.params, b.params, backend="numpy")
    assert ha["loss"] == hb["loss"]


@pytest.mark.parametrize("source", [s for s in ("torch:cpu", "strict:device1", "strict") if s in SPECS])
def test_predict_converts_arrays_of_other_libraries_and_devices(backend, source):
    model = clf(backend)
    foreign = backends.get(source).asarray(X)
    assert_equal(model.forward(foreign), to_numpy(model.forward(X)), backend=backend)
    assert_equal(model.predict(foreign), to_numpy(model.predict(X)), backend=backend)


# ------------------------------------------------------------------------------------------ documented behaviour
def test_batch_size_larger_than_data_is_one_batch():
    model = clf()
    h = xpnet.fit(model, X, Y, epochs=3, batch_size=1000)
    assert len(h["step_loss"]) == 3 and h["step_loss"] == h["loss"]
    ref = clf()
    xpnet.fit(ref, X, Y, epochs=3, batch_size=20)
    assert_equal(model.params, ref.params)


@pytest.mark.parametrize("kind", ["int64", "int32", "bool"])
def test_integer_and_boolean_X_are_converted(backend, kind):
    Xi = (X > 0) if kind == "bool" else np.round(X * 3).astype(kind)
    model = clf(backend)
    assert_equal(model.forward(Xi), to_numpy(model.forward(Xi.astype(np.float32))), backend=backend)
    a, b = clf(backend), clf(backend)
    xpnet.fit(a, Xi, Y, epochs=2)
    xpnet.fit(b, Xi.astype(np.float64), Y, epochs=2)
    assert_equal(a.params, to_numpy(b.params), backend=backend)


def test_float64_X_is_cast_to_the_model_dtype(backend):
    model = clf(backend, dtype="float32")
    out = model.forward(X)  # float64 data, float32 model
    assert to_numpy(out).dtype == np.float32


def test_single_class_softmax_trains_and_predicts_that_class(backend):
    model = clf(backend)
    h = xpnet.fit(model, X, np.full(20, 2), optimizer=xpnet.Adam(lr=0.05), epochs=30)
    assert h["loss"][-1] < h["loss"][0] and h["loss"][-1] < 0.05 and h["accuracy"][-1] == 1.0
    assert_equal(model.predict(X), np.full(20, 2), backend=backend)


def test_single_class_binary_trains(backend):
    model = xpnet.MLP([3, 4, 1], backend=backend)
    h = xpnet.fit(model, X, np.zeros(20), optimizer=xpnet.Adam(lr=0.05), epochs=30)
    assert h["loss"][-1] < 0.05 and model.output == "sigmoid"  # integer-valued floats stay labels
    assert_equal(model.predict(X), np.zeros(20, dtype=np.int64), backend=backend)


def test_nan_at_predict_time_propagates_row_by_row(backend):
    model = clf(backend)
    bad = X.copy()
    bad[4, 1] = NAN
    out = to_numpy(model.forward(bad))
    assert np.all(np.isnan(out[4])) and np.all(np.isfinite(np.delete(out, 4, axis=0)))
    assert_close(np.delete(out, 4, axis=0), np.delete(to_numpy(model.forward(X)), 4, axis=0))


def test_empty_X_at_predict_time_gives_empty_results(backend):
    model = clf(backend)
    assert to_numpy(model.forward(X[:0])).shape == (0, 3)
    assert to_numpy(model.predict(X[:0])).shape == (0,)


# ------------------------------------------------------------------------------------------ metrics
metrics = pytest.importorskip("xpnet.metrics")
METRICS_REJECTED = [
    ("metrics-nan", lambda: metrics.mean_squared_error([0.0, 1.0], [NAN, 1.0]), "contains NaN or infinity"),
    ("metrics-nan-score", lambda: metrics.roc_auc_score([0, 1, 1], [0.1, NAN, 0.3]), "y_score contains NaN"),
    ("metrics-length", lambda: metrics.accuracy_score([0, 1, 1], [0, 1]), "inconsistent numbers of samples: [3, 2]"),
    ("metrics-empty", lambda: metrics.accuracy_score([], []), "Found empty input (0 samples)"),
    ("metrics-strings", lambda: metrics.accuracy_score(np.array(["a", "b"]), np.array(["a", "a"])),
     "must hold integer class labels"),
    ("metrics-scores-as-labels", lambda: metrics.accuracy_score([0, 1], [0.2, 0.9]),
     "threshold scores or take the argmax first"),
]


@pytest.mark.parametrize("call,fragment", [pytest.param(c, f, id=i) for i, c, f in METRICS_REJECTED])
def test_metrics_reject_with_one_clear_line(call, fragment):
    with pytest.raises(ValueError) as info:
        call()
    assert fragment in str(info.value) and "\n" not in str(info.value)


@pytest.mark.skipif(torch is None, reason="needs torch")
def test_metrics_convert_y_true_to_the_prediction_library():
    y_true, y_pred = np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0])
    assert metrics.accuracy_score(y_true, torch.tensor(y_pred)) == metrics.accuracy_score(y_true, y_pred) == 0.75


def test_metrics_single_class_warns_and_uses_zero_division():
    with pytest.warns(metrics.UndefinedMetricWarning):
        assert metrics.f1_score([0, 0, 0], [0, 0, 0]) == 0.0
    with pytest.warns(metrics.UndefinedMetricWarning):
        assert math.isnan(metrics.roc_auc_score([1, 1, 1], [0.1, 0.2, 0.3]))
