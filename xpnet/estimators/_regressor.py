"""XPNetRegressor: scikit-learn's MLPRegressor trained by xpnet."""
from __future__ import annotations

import warnings
from typing import Any

from sklearn.base import RegressorMixin
from sklearn.exceptions import DataConversionWarning
from sklearn.metrics import r2_score
from sklearn.utils import column_or_1d
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_array

from ._arrays import host, input_backend
from ._base import XPNetBase

__all__ = ["XPNetRegressor"]


class XPNetRegressor(RegressorMixin, XPNetBase):
    """Multi-layer perceptron regressor trained by xpnet (any array-API backend).

    The parameters are :class:`sklearn.neural_network.MLPRegressor`'s, with the same meaning,
    order and defaults (``loss``: "squared_error", or "poisson" with predictions exp(z); solvers
    'lbfgs', 'sgd' and 'adam'), plus ``backend``, ``device``, ``dropout``, ``dtype``, ``layers``
    and ``precision`` as in :class:`XPNetClassifier`. Single- and multi-output targets; ``predict``
    returns (n_samples,) for one output, (n_samples, n_outputs) otherwise. See
    :mod:`xpnet.estimators._objective` for the losses.
    """

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, backend="numpy", device=None,
                 dropout=0.0, dtype=None, layers=None, precision="float32", comm=None):
        super().__init__(hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
                         learning_rate=learning_rate, learning_rate_init=learning_rate_init, power_t=power_t,
                         max_iter=max_iter, shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
                         warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
                         early_stopping=early_stopping, validation_fraction=validation_fraction, beta_1=beta_1,
                         beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
                         backend=backend, device=device, dropout=dropout, dtype=dtype, layers=layers,
                         precision=precision, comm=comm)
        self.loss = loss

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _output_kind(self) -> str:
        return "identity"

    def _output_name(self) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    def _predictions(self, z: Any) -> Any:
        """ŷ from the logits: exp(z) under the Poisson loss, else z."""
        return self.model_.xp.exp(z) if self.out_activation_ == "exp" else z

    def _encode_targets(self, y: Any, n: int, be: Any, dtype: Any, incremental: bool,
                        classes: Any) -> tuple[Any, Any]:
        """Targets -> (n, k) device array of ``dtype`` (no stratification labels)."""
        xp = be.xp
        if input_backend(y) == be:
            if not xp.isdtype(y.dtype, ("real floating", "integral", "bool")):
                raise ValueError(f"y must hold real numbers, got dtype {y.dtype}")
            Y = xp.astype(y, dtype)
            if Y.ndim not in (1, 2):
                raise ValueError(f"y must be 1-D or 2-D, got shape {tuple(Y.shape)}")
            if not bool(be.to_numpy(xp.all(xp.isfinite(Y)))):
                raise ValueError("Input y contains NaN or infinity.")
            if Y.ndim == 2 and Y.shape[1] == 1:
                warnings.warn("A column-vector y was passed when a 1d array was expected. Please change the "
                              "shape of y to (n_samples,), for example using ravel().", DataConversionWarning,
                              stacklevel=3)
        else:
            y = check_array(host(y), ensure_2d=False, dtype="numeric", input_name="y")
            if y.ndim == 2 and y.shape[1] == 1:
                y = column_or_1d(y, warn=True)
            Y = be.asarray(y, dtype=dtype)
        if Y.shape[0] != n:
            raise ValueError(f"Found input variables with inconsistent numbers of samples: [{n}, {Y.shape[0]}]")
        if Y.ndim == 1:
            Y = xp.reshape(Y, (-1, 1))
        return Y, None

    def _validation_score(self, Xv: Any, Yv: Any, weighted: bool) -> Any:
        """R² on the hold-out, uniformly averaged over the outputs (weighted if weights are used),
        a 0-d device array."""
        model = self.model_
        xp, k = model.xp, model.n_outputs
        w = Yv[:, k:] if weighted else xp.ones((Yv.shape[0], 1), dtype=model.dtype, device=model.backend.device)
        Y = Yv[:, :k]
        z = self._predictions(self._device_logits(Xv))
        sw = xp.sum(w)
        mean = xp.sum(w * Y, axis=0, keepdims=True) / sw
        num = xp.sum(w * (Y - z) ** 2, axis=0)
        den = xp.sum(w * (Y - mean) ** 2, axis=0)
        r2 = xp.where(den != 0.0, 1.0 - num / xp.where(den != 0.0, den, 1.0), xp.astype(num == 0.0, model.dtype))
        return xp.mean(r2)

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "XPNetRegressor":
        """Fit the network to X (n_samples, n_features) and targets y (n_samples,) or
        (n_samples, n_outputs), optionally with sample weights. Returns self."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> "XPNetRegressor":
        """One epoch over (X, y), continuing from the current parameters and optimizer state."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X: Any) -> Any:
        """Predicted values: (n_samples,) for a single output, else (n_samples, n_outputs)."""
        z, in_be = self._logits(X, "predict")
        pred = self._predictions(z)
        return self._to_output(pred[:, 0] if pred.shape[1] == 1 else pred, in_be)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """R² (uniform average over outputs) as a Python float."""
        pred = host(self.predict(X))
        sw = None if sample_weight is None else host(sample_weight)
        return float(r2_score(host(y), pred, sample_weight=sw))
