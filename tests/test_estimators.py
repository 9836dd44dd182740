"""XPNetClassifier / XPNetRegressor: scikit-learn's estimator checks, agreement with
MLPClassifier / MLPRegressor (same update from the same weights, same stopping rules,
comparable accuracy), array-API input/output, backend parity and pickling.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import sklearn
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_digits, load_wine, make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from tests.helpers import assert_close, assert_equal
from xpnet import XPNetClassifier, XPNetRegressor
from xpnet.train.loop import Trainer

try:
    import torch
except ImportError:  # pragma: no cover - torch is optional
    torch = None

pytestmark = [pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
              pytest.mark.usefixtures("one_blas_thread")]




def _clf_data(n=60, classes=3, features=5, seed=0):
    X, y = make_classification(n_samples=n, n_features=features, n_informative=3, n_redundant=0,
                               n_classes=classes, n_clusters_per_class=1, random_state=seed)
    return X, y


def _targets(kind, n=48, seed=0):
    """X and y for each kind of target."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 4))
    if kind == "binary":
        return X, (X[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(int)
    if kind == "multiclass":
        return X, np.digitize(X[:, 0] + X[:, 1], [-0.7, 0.7])
    if kind == "multilabel":
        return X, np.stack([X[:, 0] > 0, X[:, 1] > 0.3, X[:, 2] + X[:, 3] > 0], axis=1).astype(int)
    if kind == "regression":
        return X, X @ rng.normal(size=4) + 0.1 * rng.normal(size=n)
    return X, X @ rng.normal(size=(4, 3)) + 0.1 * rng.normal(size=(n, 3))  # multi-output regression


# --------------------------------------------------------------------------- scikit-learn's own checks
@parametrize_with_checks([XPNetClassifier(), XPNetRegressor()])
def test_sklearn_estimator_checks(estimator, check, monkeypatch):
    # The array-API checks run only with SCIPY_ARRAY_API=1 (read when each check runs and when
    # array_api_dispatch is switched on); set it for this test only, not for the session.
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    check(estimator)


def test_importing_xpnet_does_not_need_sklearn():
    code = ("import sys; sys.modules['sklearn'] = None\n"
            "import xpnet\n"
            "try:\n    from xpnet import XPNetClassifier\nexcept ImportError as e:\n    print('IMPORTERROR', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "IMPORTERROR" in out.stdout and "pip install scikit-learn" in out.stdout


# --------------------------------------------------------------------------- same math as scikit-learn
@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel", "regression", "multioutput"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_epochs_match_sklearn_from_the_same_weights(kind, weighted, momentum):
    """From identical weights, SGD epochs with a partial last batch, L2 (alpha) and sample
    weights give scikit-learn's parameters and loss curve: same objective, same alpha scaling
    (alpha / size of each batch, or / its weight sum), same momentum rule."""
    X, y = _targets(kind)
    sw = np.random.RandomState(1).randint(0, 4, size=X.shape[0]).astype(float) if weighted else None
    kw = dict(hidden_layer_sizes=(7, 5), activation="tanh", solver="sgd", alpha=0.3, batch_size=20,
              learning_rate_init=0.05, momentum=momentum, shuffle=False, max_iter=3, warm_start=True,
              random_state=0)
    regression = kind in ("regression", "multioutput")
    ours = (XPNetRegressor if regression else XPNetClassifier)(**kw).fit(X, y, sample_weight=sw)
    theirs = (MLPRegressor if regression else MLPClassifier)(**kw).fit(X, y, sample_weight=sw)
    # start both from our weights (copies: scikit-learn trains its arrays in place, ours write through)
    theirs.coefs_, theirs.intercepts_ = [c.copy() for c in ours.coefs_], [b.copy() for b in ours.intercepts_]
    ours.fit(X, y, sample_weight=sw)
    theirs.fit(X, y, sample_weight=sw)
    assert ours.out_activation_ == theirs.out_activation_
    assert ours.n_outputs_ == theirs.n_outputs_
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.loss_curve_[-3:], theirs.loss_curve_[-3:], rtol=1e-10)


def test_adam_matches_sklearn_closely():
    """Adam differs from scikit-learn's only by where epsilon enters (an O(epsilon) effect)."""
    X, y = _targets("multiclass")
    kw = dict(hidden_layer_sizes=(6,), batch_size=16, shuffle=False, max_iter=5, warm_start=True,
              random_state=0, alpha=0.01)
    ours, theirs = XPNetClassifier(**kw).fit(X, y), MLPClassifier(**kw).fit(X, y)
    theirs.coefs_, theirs.intercepts_ = [c.copy() for c in ours.coefs_], [b.copy() for b in ours.intercepts_]
    ours.fit(X, y)
    theirs.fit(X, y)
    for a, b in zip(ours.coefs_, theirs.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ours.loss_curve_[-5:], theirs.loss_curve_[-5:], rtol=1e-5)


@pytest.mark.parametrize("params", [
    dict(solver="adam"),
    dict(solver="sgd", learning_rate="constant"),
    dict(solver="sgd", learning_rate="adaptive"),
    dict(solver="sgd", learning_rate="invscaling"),
    dict(solver="adam", early_stopping=True),
], ids=["adam", "sgd-constant", "sgd-adaptive", "sgd-invscaling", "early-stopping"])
def test_stopping_rules_and_schedules_match_sklearn(params):
    """With a tolerance no epoch can meet, when training stops and the final learning rate
    are fixed by the rules alone: they must be scikit-learn's."""
    X, y = _clf_data(n=80)
    kw = dict(hidden_layer_sizes=(4,), tol=10.0, n_iter_no_change=2, max_iter=60, random_state=0, **params)
    ours, theirs = XPNetClassifier(**kw).fit(X, y), MLPClassifier(**kw).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ < 60
    assert ours.t_ == theirs.t_
    assert len(ours.loss_curve_) == len(theirs.loss_curve_) == ours.n_iter_
    if params["solver"] == "sgd":
        assert ours._optimizer.lr == pytest.approx(theirs._optimizer.learning_rate, rel=1e-12)
    if params.get("early_stopping"):
        assert ours.best_loss_ is None and len(ours.validation_scores_) == ours.n_iter_
    else:
        assert ours.validation_scores_ is None and ours.best_loss_ == min(ours.loss_curve_)


def test_early_stopping_restores_the_best_epoch():
    X, y = _clf_data(n=120)
    est = XPNetClassifier(hidden_layer_sizes=(16,), early_stopping=True, validation_fraction=0.25,
                          n_iter_no_change=5, learning_rate_init=0.05, random_state=3).fit(X, y)
    # the hold-out is train_test_split(range(n), stratified, random_state=seed)
    _, val = train_test_split(np.arange(len(y)), test_size=0.25, random_state=3, stratify=y)
    assert est.best_validation_score_ == max(est.validation_scores_)
    assert est.score(X[val], y[val]) == pytest.approx(est.best_validation_score_)
    assert est.n_iter_ < 200


def test_training_runs_the_one_loop(monkeypatch):
    """fit runs xpnet's Trainer for max_iter epochs, continuing the epoch counter (which keys the
    shuffles) under warm_start; partial_fit runs one epoch of it."""
    calls = []
    run = Trainer.run

    def spy(self, X, Y, epochs, **kw):
        calls.append((kw["first_epoch"], epochs))
        return run(self, X, Y, epochs, **kw)

    monkeypatch.setattr(Trainer, "run", spy)
    X, y = _clf_data()
    est = XPNetClassifier(hidden_layer_sizes=(4,), max_iter=3, warm_start=True, random_state=0).fit(X, y)
    est.fit(X, y)
    est.partial_fit(X, y)
    assert calls == [(0, 3), (3, 6), (6, 7)]
    assert est.n_iter_ == 1 and len(est.loss_curve_) == 7


# --------------------------------------------------------------------------- the estimator API
@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel"])
def test_classifier_outputs(kind):
    X, y = _targets(kind, n=80)
    labels = {"binary": np.array(["no", "yes"]), "multiclass": np.array([10, 20, 30])}.get(kind)
    yy = labels[y] if labels is not None else y
    est = XPNetClassifier(hidden_layer_sizes=(16,), max_iter=50, learning_rate_init=0.01, random_state=0).fit(X, yy)
    pred, proba, log_proba = est.predict(X), est.predict_proba(X), est.predict_log_proba(X)
    assert est.n_features_in_ == 4 and est.n_iter_ == 50 and est.t_ == 50 * 80
    assert est.out_activation_ == {"binary": "logistic", "multiclass": "softmax", "multilabel": "logistic"}[kind]
    if kind == "multilabel":
        np.testing.assert_array_equal(est.classes_, [0, 1, 2])
        assert pred.shape == (80, 3) and pred.dtype == np.int64 and set(np.unique(pred)) <= {0, 1}
        assert proba.shape == (80, 3)
        np.testing.assert_array_equal(pred, (proba > 0.5).astype(int))
    else:
        np.testing.assert_array_equal(est.classes_, labels)
        assert pred.shape == (80,) and pred.dtype == labels.dtype
        assert proba.shape == (80, len(labels))
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
        np.testing.assert_array_equal(pred, labels[proba.argmax(axis=1)])
    np.testing.assert_allclose(log_proba, np.log(proba), rtol=1e-9, atol=1e-12)
    assert isinstance(est.score(X, yy), float) and est.score(X, yy) > 0.8
    assert [c.shape for c in est.coefs_] == [(4, 16), (16, est.n_outputs_)]
    assert all(type(c) is np.ndarray and c.dtype == np.float64 for c in est.coefs_ + est.intercepts_)
    est.coefs_[0][...] = 0.0  # coefs_ write through: every input is ignored now
    np.testing.assert_array_equal(est.predict(X), est.predict(np.zeros_like(X)))


@pytest.mark.parametrize("kind", ["regression", "multioutput"])
def test_regressor_outputs(kind):
    X, y = _targets(kind, n=80)
    est = XPNetRegressor(hidden_layer_sizes=(16,), max_iter=150, learning_rate_init=0.01, random_state=0)
    pred = est.fit(X, y).predict(X)
    assert pred.shape == y.shape and pred.dtype == np.float64
    assert est.out_activation_ == "identity" and est.n_outputs_ == (1 if y.ndim == 1 else 3)
    assert est.score(X, y) > 0.9
    assert est.loss_ == est.loss_curve_[-1] < est.loss_curve_[0]


def test_dtype_follows_X_unless_given():
    X, y = _clf_data()
    assert XPNetClassifier(max_iter=2).fit(X.astype(np.float32), y).coefs_[0].dtype == np.float32
    assert XPNetClassifier(max_iter=2).fit(X.astype(np.float32), y).predict_proba(X).dtype == np.float32
    assert XPNetClassifier(max_iter=2, dtype="float64").fit(X.astype(np.float32), y).coefs_[0].dtype == np.float64
    assert XPNetClassifier(max_iter=2).fit(X.astype(int), y).coefs_[0].dtype == np.float64


def test_lists_and_pandas_work():
    X, y = _clf_data()
    ref = XPNetClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0).fit(X, y)
    est = clone(ref).fit(X.tolist(), y.tolist())
    np.testing.assert_array_equal(est.predict(X.tolist()), ref.predict(X))
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    est = clone(ref).fit(df, pd.Series(y))
    np.testing.assert_array_equal(est.feature_names_in_, df.columns)
    np.testing.assert_array_equal(est.predict(df), ref.predict(X))


def test_sample_weight_equals_dropping_or_repeating_samples():
    X, y = _targets("multiclass", n=60)
    sw = (np.arange(60) % 3 != 0).astype(float)
    kw = dict(hidden_layer_sizes=(8,), max_iter=30, random_state=0)  # n <= 200: one batch per epoch
    a = XPNetClassifier(**kw).fit(X, y, sample_weight=sw)
    b = XPNetClassifier(**kw).fit(X[sw > 0], y[sw > 0])
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-9, atol=1e-12)
    # weight 2 = the sample twice (the L2 term is divided by the weight sum, as in scikit-learn)
    r1 = XPNetRegressor(**kw).fit(X, X[:, 0], sample_weight=2 * sw)
    r2 = XPNetRegressor(**kw).fit(np.repeat(X[sw > 0], 2, axis=0), np.repeat(X[sw > 0, 0], 2))
    np.testing.assert_allclose(r1.predict(X), r2.predict(X), rtol=1e-9, atol=1e-12)


def test_warm_start_and_partial_fit():
    X, y = _clf_data()
    est = XPNetClassifier(hidden_layer_sizes=(8,), max_iter=5, warm_start=True, random_state=0).fit(X, y)
    first = list(est.loss_curve_)
    est.fit(X, y)
    assert len(est.loss_curve_) == 10 and est.loss_curve_[:5] == first
    assert est.loss_curve_[5] < first[0] and est.t_ == 10 * 60
    with pytest.raises(ValueError, match="warm_start can only be used"):
        est.fit(X[y < 2], y[y < 2])

    inc = XPNetClassifier(hidden_layer_sizes=(8,), random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        inc.partial_fit(X, y)
    for i in range(3):
        inc.partial_fit(X[i * 20:(i + 1) * 20], y[i * 20:(i + 1) * 20], classes=[0, 1, 2])
        assert inc.n_iter_ == 1
    assert inc.t_ == 60 and len(inc.loss_curve_) == 3
    np.testing.assert_array_equal(inc.classes_, [0, 1, 2])
    with pytest.raises(ValueError, match="classes not in"):
        inc.partial_fit(X[:4], [0, 1, 2, 5])
    with pytest.raises(ValueError, match="early_stopping"):
        XPNetClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow the last case provokes
def test_warnings_and_errors():
    X, y = _clf_data()
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        XPNetClassifier(max_iter=2).fit(X, y)
    with pytest.warns(UserWarning, match="batch_size"):
        XPNetClassifier(max_iter=1, batch_size=1000).fit(X, y)
    for method in ("predict", "predict_proba", "predict_log_proba"):
        with pytest.raises(NotFittedError):
            getattr(XPNetClassifier(), method)(X)
    with pytest.raises(NotFittedError):
        XPNetRegressor().coefs_
    bad = [(dict(solver="newton"), "solver"), (dict(max_fun=0), "max_fun"), (dict(activation="softplus"), "activation"),
           (dict(hidden_layer_sizes=(4, 0)), "hidden_layer_sizes"), (dict(alpha=-1.0), "alpha"),
           (dict(batch_size=0), "batch_size"), (dict(learning_rate="cosine"), "learning_rate"),
           (dict(momentum=1.5), "momentum"), (dict(dropout=1.0), "dropout"), (dict(dtype="int32"), "dtype"),
           (dict(backend="nonesuch"), "nonesuch"), (dict(beta_1=1.0), "beta_1")]
    for params, match in bad:
        with pytest.raises(ValueError, match=match):
            XPNetClassifier(max_iter=1, **params).fit(X, y)
    with pytest.raises(ValueError, match="Negative values"):
        XPNetClassifier(max_iter=1).fit(X, y, sample_weight=-np.ones(60))
    with pytest.raises(ValueError, match="non-finite"):
        XPNetRegressor(max_iter=5, learning_rate_init=1e3, solver="sgd").fit(X * 1e150, y * 1e150)


def test_dropout_changes_training_but_not_determinism():
    X, y = _clf_data()
    kw = dict(hidden_layer_sizes=(16,), max_iter=10, random_state=0)
    a = XPNetClassifier(dropout=0.3, **kw).fit(X, y)
    b = XPNetClassifier(dropout=0.3, **kw).fit(X, y)
    c = XPNetClassifier(**kw).fit(X, y)
    assert a.loss_curve_ == b.loss_curve_ != c.loss_curve_


# --------------------------------------------------------------------------- scikit-learn tools
def test_pipeline_grid_search_and_cross_val_score():
    X, y = _clf_data(n=90)
    pipe = make_pipeline(StandardScaler(), XPNetClassifier(hidden_layer_sizes=(8,), max_iter=100,
                                                           learning_rate_init=0.01, random_state=0))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.8
    grid = GridSearchCV(pipe, {"xpnetclassifier__alpha": [1e-4, 30.0],
                               "xpnetclassifier__learning_rate_init": [1e-4, 1e-2]}, cv=3).fit(X, y)
    assert grid.best_params_ == {"xpnetclassifier__alpha": 1e-4, "xpnetclassifier__learning_rate_init": 1e-2}
    assert grid.score(X, y) > 0.85
    Xr, yr = make_regression(n_samples=60, n_features=4, noise=1.0, random_state=0)
    r = cross_val_score(make_pipeline(StandardScaler(), XPNetRegressor(hidden_layer_sizes=(16,), max_iter=200,
                                                                       learning_rate_init=0.05, random_state=0)),
                        Xr, yr / yr.std(), cv=3)
    assert r.mean() > 0.8


def test_pickle_round_trip_keeps_predictions_and_optimizer_state():
    X, y = _clf_data()
    est = XPNetClassifier(hidden_layer_sizes=(8,), random_state=0).partial_fit(X, y, classes=[0, 1, 2])
    copy = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(copy.predict_proba(X), est.predict_proba(X))
    est.partial_fit(X, y)
    copy.partial_fit(X, y)  # Adam's moments and step count came along
    np.testing.assert_array_equal(copy.predict_proba(X), est.predict_proba(X))
    assert copy.loss_curve_ == est.loss_curve_


# --------------------------------------------------------------------------- accuracy vs MLPClassifier
@pytest.mark.parametrize("load", [load_digits, load_breast_cancer, load_wine], ids=["digits", "breast_cancer", "wine"])
def test_accuracy_matches_mlpclassifier(load, record_property):
    """Standardized data, the same stratified split, architecture and hyperparameters
    (MLPClassifier's defaults); mean test accuracy over three seeds within 1 point or better."""
    X, y = load(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    scaler = StandardScaler().fit(Xtr)
    Xtr, Xte = scaler.transform(Xtr), scaler.transform(Xte)
    acc = {"sklearn": [], "xpnet": []}
    for seed in range(3):
        acc["sklearn"].append(MLPClassifier(random_state=seed).fit(Xtr, ytr).score(Xte, yte))
        acc["xpnet"].append(XPNetClassifier(random_state=seed).fit(Xtr, ytr).score(Xte, yte))
    sk, xp = np.mean(acc["sklearn"]), np.mean(acc["xpnet"])
    print(f"\n{load.__name__}: MLPClassifier {sk:.4f} {np.round(acc['sklearn'], 4).tolist()}  "
          f"XPNetClassifier {xp:.4f} {np.round(acc['xpnet'], 4).tolist()}")
    record_property("accuracy_mlpclassifier", sk)
    record_property("accuracy_xpnet", xp)
    assert xp >= sk - 0.01


# --------------------------------------------------------------------------- backends and array API
@pytest.mark.parametrize("Est", [XPNetClassifier, XPNetRegressor])
def test_same_predictions_on_every_backend(backend, Est):
    """Same estimator, any backend: same predictions (dropout masks and shuffles are
    bit-identical; float64 sums differ only in rounding). Native arrays stay native."""
    X, y = _targets("multiclass" if Est is XPNetClassifier else "multioutput", n=40)
    kw = dict(hidden_layer_sizes=(8,), max_iter=15, batch_size=16, dropout=0.2, random_state=0)
    method = "predict_proba" if Est is XPNetClassifier else "predict"
    ref = Est(**kw).fit(X, y)
    est = Est(backend=backend.spec, **kw).fit(X, y)  # NumPy in, computed on `backend`, NumPy out
    assert est.model_.backend == backend
    np.testing.assert_array_equal(est.predict(X), ref.predict(X)) if Est is XPNetClassifier else None
    np.testing.assert_allclose(getattr(est, method)(X), getattr(ref, method)(X), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(est.loss_curve_, ref.loss_curve_, rtol=1e-10)

    Xb, yb = backend.asarray(X), backend.asarray(y)
    nat = Est(**kw).fit(Xb, yb)  # backend="numpy" (default) follows device arrays
    assert nat.model_.backend == backend
    out = getattr(nat, method)(Xb)
    assert_close(out, getattr(ref, method)(X), rtol=1e-8, atol=1e-10, backend=backend)
    if Est is XPNetClassifier:
        assert_equal(nat.predict(Xb), ref.predict(X), backend=backend)
    assert isinstance(nat.score(Xb, yb), float)
    back = pickle.loads(pickle.dumps(nat))
    assert back.model_.backend == backend
    assert_equal(getattr(back, method)(Xb), out, backend=backend)


@pytest.mark.parametrize("Est", [XPNetClassifier, XPNetRegressor])
def test_early_stopping_on_every_backend(backend, Est):
    """The hold-out scores (weighted: accuracy or R²) and the restored best epoch agree with NumPy's."""
    X, y = _targets("multiclass" if Est is XPNetClassifier else "multioutput", n=60)
    sw = np.random.RandomState(2).randint(0, 3, size=60).astype(float)
    kw = dict(hidden_layer_sizes=(8,), max_iter=40, early_stopping=True, validation_fraction=0.25,
              n_iter_no_change=3, learning_rate_init=0.1, random_state=0)
    ref = Est(**kw).fit(X, y, sample_weight=sw)
    est = Est(backend=backend.spec, **kw).fit(X, y, sample_weight=sw)
    assert est.n_iter_ == ref.n_iter_ < 40 and len(est.validation_scores_) == est.n_iter_
    assert est.best_validation_score_ == max(est.validation_scores_)
    np.testing.assert_allclose(est.validation_scores_, ref.validation_scores_, rtol=1e-10)
    for a, b in zip(est.coefs_ + est.intercepts_, ref.coefs_ + ref.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.skipif(torch is None, reason="needs torch")
def test_array_api_dispatch_keeps_data_in_its_namespace(monkeypatch):
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    X, y = _clf_data()
    Xt, yt = torch.asarray(X, dtype=torch.float32), torch.asarray(y)
    with sklearn.config_context(array_api_dispatch=True):
        est = XPNetClassifier(hidden_layer_sizes=(8,), max_iter=10, random_state=0).fit(Xt, yt)
        proba, pred = est.predict_proba(Xt), est.predict(Xt)
        assert isinstance(proba, torch.Tensor) and proba.dtype == torch.float32 and proba.shape == (60, 3)
        assert isinstance(pred, torch.Tensor) and pred.dtype == torch.int64
        with pytest.raises(ValueError, match="same namespace"):
            est.predict(X)
    assert est.model_.backend.spec == "torch:cpu"
    out = est.predict(X)  # without dispatch, other inputs are converted; output follows the input
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, pred.numpy())
    # an explicitly named backend wins over the input's; outputs still follow the input
    other = XPNetClassifier(hidden_layer_sizes=(8,), max_iter=10, random_state=0, backend="numpy:cpu").fit(Xt, yt)
    assert other.model_.backend.spec == "numpy"
    assert isinstance(other.predict_proba(Xt), torch.Tensor)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(other.predict_proba(Xt).numpy(), proba.numpy(), rtol=1e-5, atol=1e-6)
