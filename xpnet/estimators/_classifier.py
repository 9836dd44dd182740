"""XPNetClassifier: scikit-learn's MLPClassifier trained by xpnet."""
from __future__ import annotations

from typing import Any

from sklearn.base import ClassifierMixin
from sklearn.metrics import accuracy_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import column_or_1d
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import check_array

from ._arrays import host
from ._base import XPNetBase

__all__ = ["XPNetClassifier"]


class XPNetClassifier(ClassifierMixin, XPNetBase):
    """Multi-layer perceptron classifier trained by xpnet (any array-API backend).

    The parameters are :class:`sklearn.neural_network.MLPClassifier`'s, with the same meaning
    and defaults (solvers 'lbfgs', 'sgd' and 'adam'), plus:

    backend : str, default="numpy"
        xpnet backend spec ("numpy", "torch:cpu", "torch:cuda", "cupy", "strict:device1", ...).
        Device arrays (PyTorch, CuPy, array-api-strict) given to ``fit`` are trained on
        where they live unless another backend is named here.
    device : str or None, default=None
        Device for ``backend`` (e.g. backend="torch", device="cuda").
    dropout : float or list of float, default=0.0
        Dropout rate after every hidden layer (or one per hidden layer), used in training.
    dtype : {None, "float32", "float64"}, default=None
        Parameter dtype; None follows X like MLPClassifier (float32 data trains in
        float32, everything else in float64).
    layers : list of xpnet layers or layer configs, default=None
        The hidden layers (e.g. ``[Dense(64, activation="relu"), BatchNorm1d(), Dropout(0.1)]``),
        followed by the output layer; replaces ``hidden_layer_sizes``, ``activation`` and
        ``dropout``.
    precision : {"float32", "float16", "bfloat16"}, default="float32"
        :class:`xpnet.Network`'s precision: matrix products and activations in that dtype over
        float32 master parameters (float16 with dynamic loss scaling; not with solver="lbfgs").
        A backend without the dtype (array-api-strict) is refused with one line.
    comm : mpi4py communicator or None, default=None
        Data-parallel training over MPI, as ``xpnet.fit(..., comm=)``: every rank calls ``fit``
        with the same data; each step trains the rank's share of the batch and one allreduce
        sums the gradients, so every rank ends with the parameters one process would reach
        (within rounding). Not with ``sample_weight`` on more than one rank.

    Binary, multiclass (softmax output) and multilabel (0/1 indicator matrix y, logistic
    outputs) classification. See :mod:`xpnet.estimators` for the exact objective (with
    ``sample_weight``), how ``alpha`` maps to xpnet's L2, seeds and array handling.

    Attributes: ``classes_``, ``n_features_in_``, ``feature_names_in_``, ``loss_``,
    ``loss_curve_``, ``best_loss_``, ``validation_scores_``, ``best_validation_score_``
    (stochastic solvers), ``n_iter_``, ``t_``, ``n_layers_``, ``n_outputs_``, ``out_activation_``,
    ``coefs_``, ``intercepts_`` (NumPy arrays that write through to the network: see
    :mod:`xpnet.estimators._weights`) and ``model_`` (the :class:`xpnet.Network`).
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _output_kind(self) -> str:
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "sigmoid"

    def _encode_targets(self, y: Any, n: int, be: Any, dtype: Any, incremental: bool,
                        classes: Any) -> tuple[Any, Any]:
        """Labels -> (n, k) 0/1 device targets (LabelBinarizer, on the host), stratification labels."""
        y = check_array(host(y), ensure_2d=False, dtype=None, input_name="y")
        if y.shape[0] != n:
            raise ValueError(f"Found input variables with inconsistent numbers of samples: [{n}, {y.shape[0]}]")
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        # The rules of MLPClassifier: partial_fit's first call takes the label set from
        # `classes`; fit redefines it unless warm_start; later calls must stay within it.
        if incremental:
            if not hasattr(self, "classes_"):
                if classes is None:
                    raise ValueError("classes must be passed on the first call to partial_fit.")
                self._label_binarizer = LabelBinarizer()
                self._label_binarizer.fit(y if type_of_target(y).startswith("multilabel") else host(classes))
                self.classes_ = self._label_binarizer.classes_
            elif classes is not None and list(unique_labels(host(classes))) != list(self.classes_):
                raise ValueError(f"`classes={classes!r}` is not the same as on last call to partial_fit, "
                                 f"was: {self.classes_!r}")
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            seen = unique_labels(y)
            if self.warm_start and not incremental:
                if set(seen) != set(self.classes_):
                    raise ValueError("warm_start can only be used where `y` has the same classes as in the "
                                     f"previous call to fit. Previously got {self.classes_}, `y` has {seen}")
            elif any(c not in set(self.classes_) for c in seen):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                                 f"'y' has {seen}.")
        Y = self._label_binarizer.transform(y)
        # Early stopping's stratification (see XPNetBase._split): binary on the label column, as
        # scikit-learn; multiclass on the labels where possible; multilabel not at all.
        strat = Y.astype(bool) if Y.shape[1] == 1 else (y if y.ndim == 1 else None)
        return be.asarray(Y, dtype=dtype), strat

    def _validation_score(self, Xv: Any, Yv: Any, weighted: bool) -> Any:
        """Accuracy on the hold-out (subset accuracy for multilabel; weighted if weights are used),
        a 0-d device array."""
        model = self.model_
        xp, k = model.xp, model.n_outputs
        if len(self.classes_) == 1:
            return xp.ones((), dtype=model.dtype, device=model.backend.device)
        Y, z = Yv[:, :k], self._device_logits(Xv)
        if model.output == "softmax":
            hit = xp.argmax(z, axis=1) == xp.argmax(Y, axis=1)
        else:
            hit = xp.all((z > 0.0) == (Y > 0.5), axis=1)
        hit = xp.astype(hit, model.dtype)
        if not weighted:
            return xp.mean(hit)
        w = Yv[:, k]
        return xp.sum(hit * w) / xp.sum(w)

    # ------------------------------------------------------------------ public API
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "XPNetClassifier":
        """Fit the network to data X (n_samples, n_features) and labels y.

        y: class labels (n_samples,) or a 0/1 indicator matrix (n_samples, n_labels) for
        multilabel. sample_weight: (n_samples,) non-negative weights (see
        :mod:`xpnet.estimators._objective` for the weighted objective). Returns self.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None) -> "XPNetClassifier":
        """One epoch over (X, y); ``classes`` (all labels) is required on the first call."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True, classes=classes)

    def predict(self, X: Any) -> Any:
        """Predicted labels (n_samples,), or a 0/1 int indicator matrix for multilabel."""
        z, in_be = self._logits(X, "predict")
        xp, model = self.model_.xp, self.model_
        if self._label_binarizer.y_type_ == "multilabel-indicator":
            return self._to_output(xp.astype(z > 0.0, xp.int64), in_be)
        if model.output == "softmax":
            idx = xp.argmax(z, axis=1)
        elif len(self.classes_) == 1:
            idx = xp.zeros((z.shape[0],), dtype=xp.int64, device=model.backend.device)
        else:
            idx = xp.astype(z[:, 0] > 0.0, xp.int64)
        idx = self._to_output(idx, in_be)
        if in_be is not None:
            try:
                labels = in_be.asarray(self.classes_)
            except Exception:  # noqa: BLE001 - labels with no array-API dtype (strings): NumPy output
                labels = None
            if labels is not None:
                return in_be.xp.take(labels, idx, axis=0)
            idx = in_be.to_numpy(idx)
        return self.classes_[idx]

    def _proba(self, X: Any, method: str, log: bool) -> Any:
        z, in_be = self._logits(X, method)
        xp, model = self.model_.xp, self.model_
        out = model.output_layer.forward(z)[0]  # softmax, or σ per unit
        if model.output == "sigmoid" and self._label_binarizer.y_type_ != "multilabel-indicator":
            out = xp.concat([1.0 - out, out], axis=1)
        return self._to_output(xp.log(out) if log else out, in_be)

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities (n_samples, n_classes), columns ordered as ``classes_``
        (multilabel: the probability of each label)."""
        return self._proba(X, "predict_proba", log=False)

    def predict_log_proba(self, X: Any) -> Any:
        """log(:meth:`predict_proba`), as scikit-learn computes it (so both have the same argmax
        where probabilities round to 1; a probability that underflows gives -inf)."""
        return self._proba(X, "predict_log_proba", log=True)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean accuracy (subset accuracy for multilabel) as a Python float."""
        pred = host(self.predict(X))
        sw = None if sample_weight is None else host(sample_weight)
        return float(accuracy_score(host(y), pred, sample_weight=sw))
