"""The classic tutorial problems are learned, on every backend.

Fixed seeds everywhere, so each test is deterministic. The 200-epoch moons run is the
slowest (array-api-strict ~17 s); it runs once per library: when both "strict" and
"strict:device1" are under test only the latter runs it (same code, same bits).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_iris, make_classification, make_moons
from sklearn.model_selection import train_test_split

import xpnet
from tests.helpers import all_backends, to_numpy


def _standardize(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu, sd = train.mean(axis=0), train.std(axis=0)
    return (train - mu) / sd, (test - mu) / sd


def _accuracy(model: xpnet.MLP, X: np.ndarray, y: np.ndarray) -> float:
    pred = to_numpy(model.predict(X))
    assert pred.shape == y.shape and pred.dtype == np.int64
    return float(np.mean(pred == y))


def _moons_backends() -> list:
    specs = [b.spec for b in all_backends()]
    return [pytest.param(b, id=b.spec, marks=[pytest.mark.gpu] if b.on_gpu else [])
            for b in all_backends() if not (b.spec == "strict" and "strict:device1" in specs)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_xor(backend, seed):
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    y = np.array([0, 1, 1, 0])
    model = xpnet.MLP([2, 8, 1], activation="tanh", seed=seed, backend=backend)
    hist = xpnet.fit(model, X, y, optimizer=xpnet.Adam(lr=0.05), epochs=300, batch_size=4)
    assert _accuracy(model, X, y) == 1.0
    assert hist["loss"][-1] < 0.05 < hist["loss"][0]
    assert hist["accuracy"][-1] == 1.0
    p = to_numpy(model.forward(X))[:, 0]
    assert np.all(p[[1, 2]] > 0.9) and np.all(p[[0, 3]] < 0.1)


@pytest.mark.parametrize("backend", _moons_backends())
def test_moons(backend):
    X, y = make_moons(1000, noise=0.2, random_state=0)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=0)
    X_tr, X_te = _standardize(X_tr, X_te)
    model = xpnet.MLP([2, 64, 32, 1], activation="relu", dropout=0.1, seed=0, backend=backend)
    hist = xpnet.fit(model, X_tr, y_tr, optimizer=xpnet.Adam(lr=1e-3), l2=1e-3, epochs=200, batch_size=32)
    acc = _accuracy(model, X_te, y_te)
    print(f"moons {backend.spec}: test accuracy {acc:.3f}, final loss {hist['loss'][-1]:.4f}")
    assert acc >= 0.95
    assert len(hist["step_loss"]) == 200 * 25
    assert hist["loss"][-1] < 0.5 * hist["loss"][0]


def test_make_classification(backend):
    X, y = make_classification(1000, n_features=10, random_state=0)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=0)
    X_tr, X_te = _standardize(X_tr, X_te)
    model = xpnet.MLP([10, 8, 4, 1], seed=0, backend=backend)
    xpnet.fit(model, X_tr, y_tr, optimizer=xpnet.Adam(lr=1e-2), epochs=20, batch_size=32)
    acc = _accuracy(model, X_te, y_te)
    print(f"make_classification {backend.spec}: test accuracy {acc:.3f}")
    assert acc >= 0.90


def test_regression_smooth_function(backend):
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, size=(500, 1))
    f = lambda t: np.sin(t) + 0.3 * t  # noqa: E731
    model = xpnet.MLP([1, 32, 32, 1], activation="tanh", seed=0, backend=backend)
    hist = xpnet.fit(model, x, f(x[:, 0]), optimizer=xpnet.Adam(lr=1e-2), epochs=60, batch_size=50)
    assert model.output == "identity"  # auto output, continuous targets
    assert all(a is None for a in hist["accuracy"])
    x_test = np.linspace(-2.9, 2.9, 200)[:, None]
    pred = to_numpy(model.predict(x_test))
    assert pred.shape == (200, 1)
    y_test = f(x_test[:, 0])
    r2 = 1.0 - np.sum((pred[:, 0] - y_test) ** 2) / np.sum((y_test - y_test.mean()) ** 2)
    print(f"regression {backend.spec}: R^2 {r2:.4f}")
    assert r2 > 0.9


def test_softmax_iris(backend):
    X, y = load_iris(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
    X_tr, X_te = _standardize(X_tr, X_te)
    model = xpnet.MLP([4, 16, 3], seed=0, backend=backend)
    assert model.output == "softmax"
    hist = xpnet.fit(model, X_tr, y_tr, optimizer=xpnet.Adam(lr=1e-2), epochs=100, batch_size=20)
    acc = _accuracy(model, X_te, y_te)
    print(f"iris {backend.spec}: test accuracy {acc:.3f}")
    assert acc >= 0.9
    proba = to_numpy(model.forward(X_te))
    assert proba.shape == (30, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert hist["accuracy"][-1] >= 0.9
