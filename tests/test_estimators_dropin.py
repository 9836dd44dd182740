"""XPNetClassifier / XPNetRegressor as drop-ins for MLPClassifier / MLPRegressor: every parameter,
L-BFGS against scikit-learn's from the same weights, the Poisson loss (finite differences and
torch), sparse input, settable coefs_ / intercepts_, divergence, early stopping and
stratification as scikit-learn's, and layer lists. Every computing test runs on every backend."""

from __future__ import annotations

import math
import warnings

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_iris, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import PoissonRegressor
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import StandardScaler

import backends
import xpnet
from tests.helpers import assert_close, to_numpy
from xpnet import XPNetClassifier, XPNetRegressor
from xpnet.estimators._objective import SklearnLoss
from xpnet.nn import BatchNorm1d, Dense, Dropout, Residual

try:
    import torch
except ImportError:  # pragma: no cover - torch is optional
    torch = None


pytestmark = [pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
              pytest.mark.usefixtures("one_blas_thread")]




def _sparse_data(n=90, d=12, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, d)) * (rng.uniform(size=(n, d)) < 0.3)
    return X, (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)


def _iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


# --------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("ours, theirs", [(XPNetClassifier, MLPClassifier), (XPNetRegressor, MLPRegressor)])
def test_every_sklearn_parameter_with_its_default(ours, theirs):
    sk = theirs().get_params()
    assert {k: v for k, v in ours().get_params().items() if k in sk} == sk
    est = ours().set_params(**theirs(solver="lbfgs", max_fun=77).get_params())
    assert est.max_fun == 77 and est.solver == "lbfgs" and clone(est).get_params() == est.get_params()
    if ours is XPNetRegressor:  # the same positional order: loss first
        assert ours("poisson", (7,)).get_params()["hidden_layer_sizes"] == (7,)
        with pytest.raises(ValueError, match="loss"):
            ours(loss="huber").fit([[0.0], [1.0]], [0.0, 1.0])


# --------------------------------------------------------------------------- L-BFGS
def _lbfgs_data(name):
    if name == "iris":
        return _iris()
    if name == "breast_cancer":
        X, y = load_breast_cancer(return_X_y=True)
        return StandardScaler().fit_transform(X), y
    X, y = make_regression(200, 8, noise=10.0, random_state=0)
    return StandardScaler().fit_transform(X), (y - y.mean()) / y.std()


@pytest.mark.parametrize("name", ["iris", "breast_cancer", "regression"])
def test_lbfgs_reaches_mlps_loss_from_the_same_weights(backend, name):
    """Both start from our weights (one L-BFGS iteration in, copied into scikit-learn's estimator) and
    run to convergence; a smooth, well-regularized network, so there is one minimum to reach: final loss
    within 1% and the same training accuracy (R² to 1e-3)."""
    X, y = _lbfgs_data(name)
    ours_cls, theirs_cls = (XPNetRegressor, MLPRegressor) if name == "regression" else (XPNetClassifier,
                                                                                         MLPClassifier)
    kw = dict(solver="lbfgs", activation="logistic", hidden_layer_sizes=(10,), alpha=1.0, warm_start=True,
              random_state=0, max_iter=1)
    ours, theirs = ours_cls(backend=backend.spec, **kw).fit(X, y), theirs_cls(**kw).fit(X, y)
    theirs.coefs_ = [c.copy() for c in ours.coefs_]
    theirs.intercepts_ = [b.copy() for b in ours.intercepts_]
    ours.set_params(max_iter=500).fit(X, y)
    theirs.set_params(max_iter=500).fit(X, y)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=0.01)
    assert ours.score(X, y) == pytest.approx(theirs.score(X, y), abs=1e-3 if name == "regression" else 0)
    assert 1 < ours.n_iter_ < 500 and not hasattr(ours, "loss_curve_")


def test_lbfgs_limits_warnings_and_no_partial_fit(backend):
    X, y = _iris()
    kw = dict(solver="lbfgs", hidden_layer_sizes=(20,), random_state=1, backend=backend.spec)
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        est = XPNetClassifier(max_fun=10, **kw).fit(X, y)
    assert est.n_iter_ <= 10
    with pytest.warns(ConvergenceWarning, match=r"max_iter=3\)"):
        assert XPNetClassifier(max_iter=3, **kw).fit(X, y).n_iter_ == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        assert XPNetRegressor(tol=1e3, **kw).fit(X, X[:, 0]).n_iter_ == 0  # max|gradient| <= tol at the start
    for cls in (XPNetClassifier, XPNetRegressor):
        assert not hasattr(cls(solver="lbfgs"), "partial_fit") and hasattr(cls(solver="sgd"), "partial_fit")


# --------------------------------------------------------------------------- the Poisson loss
def _poisson_case(backend, weighted):
    rng = np.random.default_rng(3)
    z = rng.normal(size=(7, 2))
    y = rng.poisson(2.0, size=(7, 2)).astype(float)
    y[0, 0] = 0.0  # 0 log 0
    w = rng.uniform(0.2, 2.0, size=(7, 1)) if weighted else None
    Y = np.concatenate([y, w], axis=1) if weighted else y
    loss = SklearnLoss(backend.xp, "poisson", 2, weighted, alpha=0.0)
    value, grad = loss(backend.asarray(z, dtype="float64"), backend.asarray(Y, dtype="float64"))
    return z, y, w, loss, value, grad


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
def test_poisson_loss_and_gradient_oracles(backend, weighted):
    """L = (1/S) Σ_i w_i Σ_j [y log y - y z - y + e^z], ∂L/∂z = w (e^z - y)/S: the value against
    scikit-learn's half Poisson deviance, the gradient against central differences and torch."""
    z, y, w, loss, value, grad = _poisson_case(backend, weighted)
    from sklearn.neural_network._base import poisson_loss  # scikit-learn's own formula, as an oracle

    assert_close(value, poisson_loss(y, np.exp(z), None if w is None else w[:, 0]), rtol=1e-13, backend=backend)
    eps, numeric = 1e-6, np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[idx] += eps
        zm[idx] -= eps
        f = [float(_poisson_at(backend, loss, a, y, w)) for a in (zp, zm)]
        numeric[idx] = (f[0] - f[1]) / (2 * eps)
    np.testing.assert_allclose(to_numpy(grad), numeric, rtol=1e-7, atol=1e-9)
    if torch is not None:
        zt = torch.tensor(z, requires_grad=True)
        yt = torch.tensor(y)
        wt = torch.ones(7, 1, dtype=torch.float64) if w is None else torch.tensor(w)
        ylogy = torch.where(yt > 0, yt * torch.log(torch.where(yt > 0, yt, 1.0)), 0.0)
        ref = (wt * (ylogy - yt * zt - yt + torch.exp(zt))).sum() / wt.sum()
        ref.backward()
        assert_close(value, ref.detach().numpy(), rtol=1e-13, backend=backend)
        assert_close(grad, zt.grad.numpy(), rtol=1e-12, backend=backend)


def _poisson_at(backend, loss, z, y, w):
    Y = np.concatenate([y, w], axis=1) if w is not None else y
    return loss(backend.asarray(z, dtype="float64"), backend.asarray(Y, dtype="float64"))[0]


def test_poisson_regressor_equals_the_poisson_glm(backend):
    """scikit-learn's own check: a Poisson MLP with one identity hidden unit is a Poisson GLM."""
    rng = np.random.default_rng(42)
    X = np.linspace(0, 1, 100)
    y = rng.poisson(np.exp(X + 1))
    X = X.reshape(-1, 1)
    glm = PoissonRegressor(alpha=0, tol=1e-7).fit(X, y)
    mlp = XPNetRegressor(loss="poisson", hidden_layer_sizes=(1,), activation="identity", alpha=0, solver="lbfgs",
                         tol=1e-7, random_state=43, backend=backend.spec).fit(X, y)
    np.testing.assert_allclose(mlp.predict(X), glm.predict(X), rtol=1e-4)
    assert mlp.out_activation_ == "exp"
    adam = XPNetRegressor(loss="poisson", hidden_layer_sizes=(4,), max_iter=30, random_state=0, early_stopping=True,
                          backend=backend.spec).fit(X, y)
    assert np.all(adam.predict(X) > 0) and len(adam.validation_scores_) == adam.n_iter_


# --------------------------------------------------------------------------- sparse input
@pytest.mark.parametrize("solver, batch_size, early_stopping", [("adam", 32, False), ("sgd", "auto", True),
                                                                ("lbfgs", "auto", False)],
                         ids=["adam-minibatches-dropout", "sgd-full-batch-early-stopping", "lbfgs"])
def test_sparse_input_gives_the_dense_parameters(backend, solver, batch_size, early_stopping):
    X, y = _sparse_data()
    kw = dict(hidden_layer_sizes=(7,), solver=solver, batch_size=batch_size, max_iter=15, random_state=0,
              early_stopping=early_stopping, dropout=0.1 if solver == "adam" else 0.0, backend=backend.spec)
    dense = XPNetClassifier(**kw).fit(X, y)
    sparse = XPNetClassifier(**kw).fit(sp.csr_matrix(X), y)
    assert sparse.coefs_[0].dtype == np.float64
    for a, b in zip(sparse.coefs_ + sparse.intercepts_, dense.coefs_ + dense.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    for fmt in (sp.csr_array, sp.csc_matrix, sp.coo_array):
        np.testing.assert_allclose(sparse.predict_proba(fmt(X)), dense.predict_proba(X), rtol=1e-12, atol=1e-13)


def test_sparse_batches_are_densified_one_at_a_time(backend, monkeypatch):
    """Mini-batches: only the batch's rows are densified; L-BFGS (one full batch): nothing is where the
    library has a sparse product, else blocks of at most BLOCK_ELEMENTS values (here 25 rows)."""
    X, y = _sparse_data(n=150)
    monkeypatch.setattr(backends._sparse, "BLOCK_ELEMENTS", 25 * X.shape[1])
    cls = type(backends.sparse_rows(backend, sp.csr_matrix(X[:2]), "float64"))
    sizes = []
    for name in ("take", "_block"):
        original = getattr(cls, name)

        def spy(self, *args, _original=original):
            out = _original(self, *args)
            sizes.append(out.shape[0])
            return out
        monkeypatch.setattr(cls, name, spy)
    XPNetRegressor(hidden_layer_sizes=(5,), batch_size=20, max_iter=2, backend=backend.spec,
                   random_state=0).fit(sp.csr_matrix(X), y)
    assert sizes and max(sizes) == 20
    sizes.clear()
    XPNetRegressor(hidden_layer_sizes=(5,), solver="lbfgs", max_iter=3, backend=backend.spec,
                   random_state=0).fit(sp.csr_matrix(X), y)
    assert sizes == [] if backend.name in ("numpy", "torch", "cupy") else sizes and max(sizes) == 25
    with pytest.raises(ValueError, match="must then be a Dense layer"):  # a full sparse batch meets a Dense
        XPNetRegressor(layers=[BatchNorm1d(), Dense(5)], solver="lbfgs", backend=backend.spec).fit(
            sp.csr_matrix(X), y)


# --------------------------------------------------------------------------- coefs_ and intercepts_
def test_coefs_and_intercepts_write_through(backend):
    X, y = _iris()
    est = XPNetClassifier(hidden_layer_sizes=(6,), max_iter=5, random_state=0, backend=backend.spec)
    est.fit(X, y)
    est.coefs_[1][...] = 0.0  # in place
    est.intercepts_[1] = [5.0, 0.0, 0.0]  # one item
    assert (est.predict(X) == 0).all()
    new_w = [np.ones((4, 6)), np.zeros((6, 3))]
    est.coefs_ = new_w  # the whole list
    est.intercepts_ = [np.zeros(6), np.array([0.0, 1.0, 0.0])]
    assert (est.predict(X) == 1).all()
    np.testing.assert_array_equal(est.coefs_[0], 1.0)
    assert_close(est.model_.weights[0], new_w[0], backend=backend)
    with pytest.raises(ValueError, match=r"coefs_\[0\] must have shape \(4, 6\)"):
        est.coefs_[0] = np.ones((6, 4))
    with pytest.raises(ValueError, match="needs 2 arrays"):
        est.coefs_ = new_w[:1]


def test_assigned_weights_start_warm_start_and_partial_fit(backend):
    """Weights set through coefs_/intercepts_ are where the next fit starts: SGD epochs from them match
    scikit-learn's from the same arrays; before any fit they shape the network partial_fit trains
    (scikit-learn's own worked example)."""
    X, y = _iris()
    rng = np.random.default_rng(0)
    start = [rng.normal(size=(4, 5)) * 0.5, rng.normal(size=(5, 3)) * 0.5], [np.zeros(5), np.zeros(3)]
    kw = dict(hidden_layer_sizes=(5,), solver="sgd", max_iter=3, warm_start=True, shuffle=False, random_state=0,
              batch_size=50)
    ours = XPNetClassifier(backend=backend.spec, **kw).fit(X, y)
    theirs = MLPClassifier(**kw).fit(X, y)
    ours.coefs_, ours.intercepts_ = start
    theirs.coefs_, theirs.intercepts_ = [c.copy() for c in start[0]], [b.copy() for b in start[1]]
    ours.fit(X, y)
    theirs.fit(X, y)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)

    mlp = XPNetClassifier(solver="sgd", learning_rate_init=0.1, alpha=0.1, activation="logistic", random_state=1,
                          max_iter=1, hidden_layer_sizes=2, momentum=0, backend=backend.spec)
    mlp.coefs_ = [np.array([[0.1, 0.2], [0.3, 0.1], [0.5, 0]]), np.array([[0.1], [0.2]])]
    mlp.intercepts_ = [np.array([0.1, 0.1]), np.array([1.0])]
    mlp.partial_fit(np.array([[0.6, 0.8, 0.7]]), np.array([0]), classes=[0, 1])
    np.testing.assert_allclose(mlp.coefs_[0], [[0.098, 0.195756], [0.2956664, 0.096008], [0.4939998, -0.002244]],
                               atol=1e-3)
    np.testing.assert_allclose(mlp.intercepts_[1], [0.9235], atol=1e-3)
    assert mlp.predict_proba(np.array([[0.6, 0.8, 0.7]]))[0, 1] == pytest.approx(0.739, abs=1e-3)


# --------------------------------------------------------------------------- runs that go wrong
def _diverging(early_stopping, backend):
    return XPNetRegressor(hidden_layer_sizes=100, activation="identity", solver="sgd", learning_rate_init=1,
                          max_iter=20, early_stopping=early_stopping, n_iter_no_change=10, random_state=0,
                          backend=backend.spec)


def test_a_diverging_run_goes_on_as_in_sklearn(backend):
    """scikit-learn keeps training a diverging run: with early stopping it records NaN validation scores
    and keeps the best finite weights; without, its non-finite weights end in its ValueError after
    max_iter epochs and the ConvergenceWarning. xpnet.fit still stops at the first bad epoch."""
    X, y = load_iris(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        est = _diverging(True, backend).fit(X, y)
        sk = MLPRegressor(hidden_layer_sizes=100, activation="identity", solver="sgd", learning_rate_init=1,
                          max_iter=20, early_stopping=True, random_state=0).fit(X, y)
    assert est.n_iter_ == sk.n_iter_ == 20
    assert isinstance(est.validation_scores_[-1], float) and math.isnan(est.validation_scores_[-1])
    assert est.best_validation_score_ == max(v for v in est.validation_scores_ if not math.isnan(v))
    assert np.isfinite(est.predict(X)).all()
    with warnings.catch_warnings(record=True) as caught, pytest.raises(ValueError, match="non-finite parameter"):
        warnings.simplefilter("always")
        est = _diverging(False, backend)
        est.fit(X, y)
    assert len(est.loss_curve_) == 20 and any(issubclass(w.category, ConvergenceWarning) for w in caught)
    model = xpnet.MLP([4, 100, 1], activation="identity", output="identity", backend=backend, dtype="float64")
    with warnings.catch_warnings(), pytest.raises(xpnet.TrainingStopped):
        warnings.simplefilter("ignore", RuntimeWarning)
        xpnet.fit(model, X, y.astype(float), optimizer=xpnet.SGD(lr=1.0), epochs=20)


def test_early_stopping_stratification_is_sklearns(backend):
    """Binary targets: stratified, and a class with one member is scikit-learn's error, word for word.
    Multiclass (which scikit-learn does not stratify) with a single-member class trains."""
    X = [[1, 2], [2, 3], [3, 4], [4, 5]]
    errors = []
    for est in (MLPClassifier(early_stopping=True), XPNetClassifier(early_stopping=True, backend=backend.spec)):
        with pytest.raises(ValueError) as info:
            est.fit(X, [0, 0, 0, 1])
        errors.append(str(info.value))
    assert errors[0] == errors[1] and "Classes with too few members are: ['True']" in errors[1]
    X, y = _iris()
    y3 = np.r_[y[:-1], 3]
    XPNetClassifier(early_stopping=True, max_iter=3, backend=backend.spec).fit(X, y3)
    MLPClassifier(early_stopping=True, max_iter=3).fit(X, y3)


# --------------------------------------------------------------------------- layer lists
LAYERS = [Dense(12, activation="tanh"), BatchNorm1d(), Dropout(0.1),
          Residual([Dense(12, activation="relu"), Dense(12)])]


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_a_layer_list_trains_and_clones(backend, solver):
    X, y = _iris()
    est = XPNetClassifier(layers=LAYERS, solver=solver, max_iter=60, learning_rate_init=0.02, random_state=0,
                          backend=backend.spec)
    before = joblib.hash(est.get_params())
    est.fit(X, y)
    ref = clone(est).set_params(backend="numpy").fit(X, y)
    as_configs = clone(ref).set_params(layers=[layer.config() for layer in LAYERS]).fit(X, y)
    assert joblib.hash(est.get_params()) == before and est.layers is LAYERS  # the parameter is untouched
    assert est.n_layers_ == 5 and [c.shape for c in est.coefs_] == [(4, 12), (12, 12), (12, 12), (12, 3)]
    assert est.score(X, y) > 0.9
    if solver == "lbfgs":  # BatchNorm's running statistics: the full batch's, at the final parameters
        model = est.model_
        h = np.tanh(X @ est.coefs_[0] + est.intercepts_[0])
        for name, value in (("running_mean", h.mean(axis=0)), ("running_var", h.var(axis=0, ddof=1))):
            assert_close(model.layout[f"1.{name}"].view(model.buffers, model.xp), value, rtol=1e-9,
                         backend=backend)
    np.testing.assert_allclose(est.predict_proba(X), ref.predict_proba(X), rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(as_configs.predict_proba(X), ref.predict_proba(X))  # configs: the same network
    with pytest.raises(ValueError, match="layers"):
        XPNetClassifier(layers=[Dense(4), "relu"]).fit(X, y)
    with pytest.raises(ValueError, match="unknown layer type"):
        XPNetClassifier(layers=[{"type": "Conv2d"}]).fit(X, y)
