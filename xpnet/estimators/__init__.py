"""scikit-learn estimators over xpnet: :class:`XPNetClassifier` and :class:`XPNetRegressor`.

    from xpnet import XPNetClassifier
    clf = XPNetClassifier(hidden_layer_sizes=(100,), random_state=0).fit(X_train, y_train)
    clf.predict_proba(X_test)

Drop-in counterparts of :class:`sklearn.neural_network.MLPClassifier` /
:class:`~sklearn.neural_network.MLPRegressor`: every parameter with the same meaning (solvers
"lbfgs", "sgd", "adam"; the regressor's ``loss="poisson"``), the same loss, L2 scaling, schedules,
stopping rules, warnings, errors and fitted attributes, but the network is an xpnet network
trained by xpnet's one training loop (:class:`xpnet.train.loop.Trainer`) on any backend
(``backend="numpy" | "torch:cuda" | "cupy" | "strict:device1" ...``), optionally built from a
``layers`` list. scikit-learn is an optional dependency of xpnet; this package needs it.

Where the details are:

* ``_objective``: the objective (scikit-learn's losses with sample weights, fused with the
  output), how ``alpha`` becomes xpnet's L2 (λ = alpha / batch size, or / the batch's weight
  sum), and ``solver="sgd"`` (scikit-learn's velocity rule). ``solver="adam"`` is
  :class:`xpnet.Adam` (PyTorch's update, which puts ``epsilon`` after the bias correction where
  scikit-learn puts it before: an O(epsilon) difference).
* ``_lbfgs``: ``solver="lbfgs"``, one full-batch step of :class:`xpnet.LBFGS`.
* ``_rules``: the per-epoch rules (loss curve, ``tol``/``n_iter_no_change``, early stopping,
  the "invscaling" and "adaptive" learning rates, verbose output, convergence warnings).
* ``_base``: the network, fitting, seeds and shuffles, the early-stopping split, sparse input,
  pickling; ``_params``: the hyperparameter checks; ``_weights``: ``coefs_`` / ``intercepts_``.
* ``_arrays``: NumPy, pandas, lists, SciPy sparse matrices and device arrays in and out.
"""
try:
    import sklearn  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without scikit-learn
    raise ImportError("xpnet's XPNetClassifier / XPNetRegressor need scikit-learn: "
                      "pip install scikit-learn") from exc

from ._classifier import XPNetClassifier
from ._regressor import XPNetRegressor

__all__ = ["XPNetClassifier", "XPNetRegressor"]
