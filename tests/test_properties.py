"""Property tests (hypothesis) over random architectures, data shapes, batch sizes and dtypes.

On NumPy and one other backend (array-api-strict on device1, else torch): training on standardized
data with default settings stays finite; shapes, dtypes, namespace and device are preserved;
predictions do not depend on the batch size used for inference; checkpoints round-trip exactly.
Examples are derandomized (the same every run) and few enough to keep this file under ~30 s.
"""

from __future__ import annotations

import os
import tempfile

import array_api_compat
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import backends
import xpnet
import xpnet.checkpoint as ckpt
from tests.helpers import all_backends, assert_close, assert_equal, to_numpy

_SPECS = [b.spec for b in all_backends()]
_OTHER = next((s for s in ("strict:device1", "torch:cpu", "strict") if s in _SPECS), None)
BACKENDS = ["numpy"] + ([_OTHER] if _OTHER else [])
ACTIVATIONS = ["relu", "leaky_relu", "sigmoid", "tanh", "gelu", "identity"]
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def problems(draw):
    """(model kwargs, X, y, batch size, task) of a random small problem."""
    task = draw(st.sampled_from(["binary", "multiclass", "multilabel", "regression"]))
    n_in, n = draw(st.integers(1, 6)), draw(st.integers(1, 40))
    k = {"binary": 1, "multiclass": draw(st.integers(2, 4)), "multilabel": draw(st.integers(2, 3)),
         "regression": draw(st.integers(1, 3))}[task]
    sizes = [n_in, *draw(st.lists(st.integers(1, 12), max_size=3)), k]
    batch = draw(st.sampled_from([1, n, draw(st.integers(1, n))]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X = rng.normal(size=(n, n_in))
    if n > 1:
        X = (X - X.mean(axis=0)) / X.std(axis=0)
    X = {"float64": X, "float32": X.astype(np.float32), "int64": np.round(2 * X).astype(np.int64),
         "bool": X > 0}[draw(st.sampled_from(["float64", "float32", "int64", "bool"]))]
    y = {"binary": rng.integers(0, 2, n), "multiclass": rng.integers(0, k, n),
         "multilabel": rng.integers(0, 2, (n, k)), "regression": rng.normal(size=(n, k) if k > 1 else n)}[task]
    kwargs = dict(sizes=sizes, activation=draw(st.sampled_from(ACTIVATIONS)),
                  dropout=draw(st.sampled_from([0.0, 0.3])) if len(sizes) > 2 else 0.0,
                  dtype=draw(st.sampled_from(["float32", "float64"])), seed=draw(st.integers(0, 1000)),
                  output={"multilabel": "sigmoid", "regression": "identity"}.get(task, "auto"))
    return kwargs, X, y, batch, task


def _on_backend(a, backend):
    assert array_api_compat.array_namespace(a) is backend.xp
    assert array_api_compat.device(a) == backend.device


@pytest.mark.parametrize("spec", BACKENDS)
def test_training_is_finite_and_preserves_shapes(spec):
    backend = backends.get(spec)

    @SETTINGS
    @given(problems())
    def check(problem):
        kwargs, X, y, batch, task = problem
        model = xpnet.MLP(kwargs.pop("sizes"), backend=backend, **kwargs)
        n_params, dtype = model.n_params, to_numpy(model.params).dtype
        hist = xpnet.fit(model, X, y, epochs=3, batch_size=batch)
        assert np.all(np.isfinite(hist["loss"])) and np.all(np.isfinite(hist["step_loss"]))
        assert len(hist["step_loss"]) == 3 * -(-X.shape[0] // batch)
        params = to_numpy(model.params)
        assert params.shape == (n_params,) and params.dtype == dtype and np.all(np.isfinite(params))
        _on_backend(model.params, backend)
        assert all(w.shape == (a, b) for w, a, b in zip(model.weights, model.sizes, model.sizes[1:]))
        out = model.forward(X)
        _on_backend(out, backend)
        k = model.sizes[-1]
        assert to_numpy(out).shape == (X.shape[0], k) and to_numpy(out).dtype == dtype
        assert np.all(np.isfinite(to_numpy(out)))
        pred = to_numpy(model.predict(X))
        single = task in ("multiclass", "binary")
        assert pred.shape == ((X.shape[0],) if single else (X.shape[0], k))
        assert pred.dtype == (np.int64 if task != "regression" else dtype)

    check()


@pytest.mark.parametrize("spec", BACKENDS)
def test_predictions_do_not_depend_on_inference_batch_size(spec):
    backend = backends.get(spec)

    @SETTINGS
    @given(problems(), st.sampled_from([1, 2, 3, 7, 16]))
    def check(problem, chunk):
        kwargs, X, y, batch, task = problem
        model = xpnet.MLP(kwargs.pop("sizes"), backend=backend, **kwargs)
        xpnet.fit(model, X, y, epochs=1, batch_size=batch)
        whole = to_numpy(model.forward(X))
        parts = np.concatenate([to_numpy(model.forward(X[i:i + chunk])) for i in range(0, X.shape[0], chunk)])
        tol = {"float32": 1e-5, "float64": 1e-12}[model.dtype_name]
        assert_close(parts, whole, rtol=tol, atol=tol)
        logits = to_numpy(model.logits(X))
        labels = np.concatenate([to_numpy(model.predict(X[i:i + chunk])) for i in range(0, X.shape[0], chunk)])
        if task == "multiclass":  # labels are equal wherever the top two logits are not a near-tie
            top2 = np.sort(logits, axis=1)[:, -2:]
            clear = top2[:, 1] - top2[:, 0] > 10 * tol * np.maximum(1.0, np.abs(top2[:, 1]))
        else:  # sigmoid: wherever a logit is not near 0 (regression: unused)
            clear = np.all(np.abs(logits) > 10 * tol, axis=1)
        if task == "regression":  # predict gives the values themselves
            assert_close(labels, to_numpy(model.predict(X)), rtol=tol, atol=tol)
        else:
            assert_equal(labels[clear], to_numpy(model.predict(X))[clear])
        Xd, Yd = model.as_input(X), model.targets(y)
        loss_a, acc_a = xpnet.evaluate(model, Xd, Yd)
        loss_b, acc_b = xpnet.evaluate(model, Xd, Yd, batch_size=chunk)
        assert loss_b == pytest.approx(loss_a, rel=100 * tol, abs=100 * tol)
        if task == "regression" or clear.all():
            assert acc_a == acc_b

    check()


@pytest.mark.parametrize("spec", BACKENDS)
def test_checkpoint_round_trip_is_exact(spec):
    backend = backends.get(spec)

    @SETTINGS
    @given(problems())
    def check(problem):
        kwargs, X, y, batch, task = problem
        model = xpnet.MLP(kwargs.pop("sizes"), backend=backend, **kwargs)
        opt = xpnet.Adam()
        hist = xpnet.fit(model, X, y, optimizer=opt, epochs=1, batch_size=batch)
        with tempfile.TemporaryDirectory() as tmp:
            ck = ckpt.load(ckpt.save(os.path.join(tmp, "c.npz"), model, opt, hist, epoch=1))
        for target in {spec, "numpy"}:
            m2, o2 = ck.restore(backend=target)
            assert m2.config() == model.config() and o2.t == opt.t
            assert_equal(m2.params, to_numpy(model.params), backend=target)
            assert_equal(o2.state["v"], to_numpy(opt.state["v"]), backend=target)
            assert [d.counter for d in m2.dropout_layers] == [d.counter for d in model.dropout_layers]
            assert_close(m2.forward(X), to_numpy(model.forward(X)), backend=target,
                         rtol=0 if target == spec else {"float32": 1e-5, "float64": 1e-12}[model.dtype_name])
        assert ck.history == hist

    check()
