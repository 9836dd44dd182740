"""scikit-learn estimators over xpnet: :class:`XPNetClassifier` and :class:`XPNetRegressor`.

    from xpnet import XPNetClassifier
    clf = XPNetClassifier(hidden_layer_sizes=(100,), random_state=0).fit(X_train, y_train)
    clf.predict_proba(X_test)

Drop-in counterparts of :class:`sklearn.neural_network.MLPClassifier` /
:class:`~sklearn.neural_network.MLPRegressor` (stochastic solvers): same parameter names
and meanings, same loss, same L2 scaling, same schedules, stopping rules and fitted
attributes, but the forward and backward passes are xpnet's and run on any backend
(``backend="numpy" | "torch:cuda" | "cupy" | "strict:device1" ...``). scikit-learn is an
optional dependency of xpnet; this module needs it.

Objective (identical to scikit-learn's). For a mini-batch with rows i, targets y_i,
sample weights w_i (all 1 without ``sample_weight``) and S = Σ_i w_i (the batch size
without weights), the network's output logits z_i are scored by

* softmax (multiclass):  L = (1/S) Σ_i w_i [logsumexp(z_i) - y_i·z_i]
* logistic (binary, multilabel; k output units):
  L = (1/S) Σ_i w_i Σ_j [softplus(z_ij) - y_ij z_ij]  (summed over the k labels, as
  scikit-learn's ``binary_log_loss``; xpnet's ``bce`` would average over them)
* identity (regression, k outputs): L = (1/(2kS)) Σ_i w_i ||z_i - y_i||²

and the gradient fed to backprop is, in all three cases, ∂L/∂z_i = w_i (p_i - y_i) / S
with p_i = softmax(z_i), σ(z_i) or z_i. (For regression with k > 1 outputs this is
what scikit-learn uses too: its reported loss averages over the outputs, its gradient
does not.) The per-sample weights thus multiply the rows of the difference p - y: the
weighted loss is implemented as a fused loss (logits -> value, d logits) handed to
``MLP._step``; the weights travel as an extra column of the target matrix, so they are
shuffled and sliced with it on the device.

L2 (``alpha``). scikit-learn adds (alpha/2)·||W||²/S to every batch loss (W: all
weights, no biases), gradient alpha·W/S. xpnet's ``l2=λ`` adds (λ/2)·ΣW² to the
batch-mean loss, so the estimator passes λ = alpha / batch_size for every step — for
the last, partial batch alpha divided by *that* batch's size, exactly like scikit-learn
(with sample weights: λ = alpha / Σ_batch w, computed on the device).

Initialisation follows scikit-learn's scheme: weights and biases ~ U(-b, b) with
b = sqrt(6 / (fan_in + fan_out)) (sqrt(2 / ...) for ``activation="logistic"``), drawn
from :mod:`xpnet.random`, so they are bit-identical on every backend (but are not the
draws of NumPy's RandomState: results match scikit-learn's statistically, not bitwise).

Randomness. ``random_state``: an int is used directly as the xpnet seed (init, dropout,
shuffles, the early-stopping split); ``None`` or a ``RandomState`` draw the seed from
NumPy's global generator / that generator at each (non-incremental) fit, as
scikit-learn's estimators would be nondeterministic then.

Optimizers. ``solver="adam"`` uses :class:`xpnet.Adam` (PyTorch's update, which puts
``epsilon`` after the bias correction where scikit-learn puts it before: an O(epsilon)
difference). ``solver="sgd"`` uses a small local SGD following scikit-learn's velocity
rule v <- momentum·v - lr·g (so a changing learning rate acts like scikit-learn's), with
``learning_rate`` "constant", "invscaling" (lr = learning_rate_init / (t + 1)^power_t
after each epoch, t = samples seen) and "adaptive" (lr /= 5 whenever n_iter_no_change
epochs fail to improve by tol, stop when lr <= 1e-6), as scikit-learn defines them.

Arrays. NumPy arrays, pandas objects and lists are validated with scikit-learn's
``validate_data`` and outputs are NumPy. Arrays of another array-API library (PyTorch,
CuPy, array-api-strict) are not moved off their device: with the default
``backend="numpy"`` the estimator trains with that library on that device, and outputs
(predictions, probabilities) come back in the input's namespace and device; naming
another ``backend`` (``"numpy:cpu"`` to force NumPy) trains there and still returns
outputs in the input's namespace and device. Class labels make one round trip to the host to be encoded (``classes_`` is
a NumPy array, as in scikit-learn; string labels work). With
``sklearn.set_config(array_api_dispatch=True)``, predicting with arrays of a namespace or
device other than the one used in ``fit`` raises a ``ValueError`` (as scikit-learn's
array-API estimators do); without dispatch such inputs are converted.

Pickling moves the parameters (and optimizer state) to NumPy and back onto the same
backend on load (NumPy, with a warning, if that backend is unavailable there).
"""
from __future__ import annotations

import math
import numbers
import operator
import warnings
from typing import Any

try:
    from sklearn import get_config
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning, DataConversionWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils import check_random_state, column_or_1d
    from sklearn.utils.multiclass import type_of_target, unique_labels
    from sklearn.utils.validation import check_array, check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - exercised only without scikit-learn
    raise ImportError("xpnet's XPNetClassifier / XPNetRegressor need scikit-learn: "
                      "pip install scikit-learn") from exc

import array_api_compat

import backends as _backends

from . import random as xrandom
from .model import MLP
from .optim import Adam, Optimizer

__all__ = ["XPNetClassifier", "XPNetRegressor"]

_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "sigmoid": "sigmoid", "tanh": "tanh",
                "relu": "relu", "leaky_relu": "leaky_relu", "gelu": "gelu"}
_OUT_NAMES = {"softmax": "softmax", "sigmoid": "logistic", "identity": "identity"}
_FLOAT_DTYPES = ("float64", "float32")
_BIAS_STREAM_COUNTER = 1  # biases drawn from the layer's init stream, counter 1 (weights: counter 0)


# ---------------------------------------------------------------------------- arrays and backends
def _is_device_array(a: Any) -> bool:
    """An array of an array-API library other than NumPy that xpnet can compute on."""
    return (array_api_compat.is_torch_array(a) or array_api_compat.is_cupy_array(a)
            or type(a).__module__.startswith("array_api_strict"))


_BACKEND_CACHE: dict[tuple[str, str], Any] = {}


def _get_backend(name: Any, device: Any = None) -> Any:
    if isinstance(name, _backends.Backend) and device is None:
        return name
    key = (str(getattr(name, "spec", name)), repr(device))
    be = _BACKEND_CACHE.get(key)
    if be is None:
        be = _BACKEND_CACHE[key] = _backends.get(name, device)
    return be


def _input_backend(a: Any) -> Any:
    """The backend an array lives on (None for NumPy, lists, pandas and other array-likes)."""
    if array_api_compat.is_torch_array(a):
        return _get_backend("torch", str(a.device))
    if array_api_compat.is_cupy_array(a):
        return _get_backend("cupy", str(a.device.id))
    if type(a).__module__.startswith("array_api_strict"):
        return _get_backend("strict", a.device)
    return None


def _host(a: Any) -> Any:
    """Device arrays to NumPy; anything else unchanged."""
    return _backends.to_numpy(a) if _is_device_array(a) else a


def _host_float(be: Any, a: Any) -> float:
    return float(be.to_numpy(a))


def _float_dtype_of(be: Any, a: Any) -> str:
    """float32 for float32 (or smaller float) device data, else float64 where supported."""
    xp = be.xp
    if a.dtype == xp.float32 or getattr(xp, "float16", None) is not None and a.dtype == xp.float16:
        return "float32"
    try:
        be.dtype("float64")
    except ValueError:
        return "float32"
    return "float64"


# ---------------------------------------------------------------------------- loss and optimizer
class _Loss:
    """scikit-learn's MLP losses as a fused xpnet loss ``(xp, z, Y) -> (value, dL/dz)``.

    ``kind``: "softmax", "sigmoid" or "identity"; ``k`` output units. With ``weighted``,
    Y carries the sample weights as an extra last column (see the module docstring for
    the formulas); the batch's weight sum S is kept in ``sw_sum`` for the L2 term.
    """

    def __init__(self, kind: str, k: int, weighted: bool):
        self.kind, self.k, self.weighted = kind, k, weighted
        self.sw_sum: Any = None

    def __call__(self, xp: Any, z: Any, Y: Any) -> tuple[Any, Any]:
        k = self.k
        if self.weighted:
            w, Y = Y[:, k:], Y[:, :k]
            s = xp.sum(w)
            self.sw_sum = s
            scale = w / xp.where(s > 0.0, s, 1.0)  # a batch of zero weights contributes nothing
        else:
            self.sw_sum = float(z.shape[0])
            scale = 1.0 / self.sw_sum
        if self.kind == "softmax":
            sh = z - xp.max(z, axis=1, keepdims=True)
            es = xp.exp(sh)
            total = xp.sum(es, axis=1, keepdims=True)
            per_row = xp.log(total) - xp.sum(Y * sh, axis=1, keepdims=True)
            p = es / total
        elif self.kind == "sigmoid":
            e = xp.exp(-xp.abs(z))
            per_row = xp.sum(xp.maximum(z, 0.0) - z * Y + xp.log1p(e), axis=1, keepdims=True)
            r = 1.0 / (1.0 + e)
            p = xp.where(z >= 0.0, r, e * r)
        else:
            d = z - Y
            per_row = xp.sum(d * d, axis=1, keepdims=True) * (0.5 / k)
            p = z
        return xp.sum(per_row * scale), (p - Y) * scale


class _SGD(Optimizer):
    """scikit-learn's SGD: v <- momentum·v - lr·g; p <- p + v, or with Nesterov's momentum
    p <- p + momentum·v - lr·g (v the updated velocity). Without momentum: p <- p - lr·g."""

    def __init__(self, lr: float, momentum: float = 0.9, nesterov: bool = True):
        super().__init__(lr)
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def _update(self, p: Any, g: Any) -> None:
        if self.momentum == 0.0:
            p -= self.lr * g
            return
        v = self._buffer("velocity", p)
        v *= self.momentum
        v -= self.lr * g
        if self.nesterov:
            p += self.momentum * v - self.lr * g
        else:
            p += v


# ---------------------------------------------------------------------------- parameter checks
def _bad(name: str, value: Any, what: str) -> ValueError:
    return ValueError(f"{name} must be {what}, got {value!r}")


def _real(name: str, value: Any, low: float, high: float = math.inf, low_open: bool = False,
          high_open: bool = False) -> float:
    rng = f"{'(' if low_open else '['}{low}, {high}{')' if high_open or high == math.inf else ']'}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _bad(name, value, f"a number in {rng}")
    v = float(value)
    if (math.isnan(v) or v < low or v > high or (low_open and v == low) or (high_open and v == high)):
        raise _bad(name, value, f"a number in {rng}")
    return v


def _integer(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < low:
        raise _bad(name, value, f"an integer >= {low}")
    return int(value)


# ---------------------------------------------------------------------------- the estimators
class _XPNetBase(BaseEstimator):
    """Shared machinery of :class:`XPNetClassifier` and :class:`XPNetRegressor`."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 warm_start=False, momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 backend="numpy", device=None, dropout=0.0, dtype=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.backend = backend
        self.device = device
        self.dropout = dropout
        self.dtype = dtype

    # ------------------------------------------------------------------ tags
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # NumPy, array-api-strict, PyTorch and CuPy inputs are computed on where they live.
        tags.array_api_support = True
        # Sparse input is refused with a clear error (xpnet computes on dense arrays only);
        # input_tags.sparse stays False, so the sparse checks verify that error.
        tags.input_tags.sparse = False
        return tags

    # ------------------------------------------------------------------ parameters
    def _check_params(self) -> dict:
        """Validate the hyperparameters; returns the normalized ones."""
        p: dict[str, Any] = {}
        hls = self.hidden_layer_sizes
        hls = [hls] if isinstance(hls, numbers.Integral) and not isinstance(hls, bool) else hls
        try:
            sizes = list(hls)
            ok = all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in sizes)
        except TypeError:
            ok = False
        if not ok:
            raise ValueError(f"hidden_layer_sizes must be a positive int or a sequence of positive ints, "
                             f"got {self.hidden_layer_sizes!r}")
        p["hidden"] = [int(s) for s in sizes]
        if self.activation not in _ACTIVATIONS:
            raise _bad("activation", self.activation, f"one of {sorted(_ACTIVATIONS)}")
        if self.solver == "lbfgs":
            raise ValueError("solver='lbfgs' is not supported by xpnet's estimators (it needs full-batch "
                             "line searches on the host); use solver='adam' or solver='sgd'")
        if self.solver not in ("adam", "sgd"):
            raise _bad("solver", self.solver, "'adam' or 'sgd'")
        p["alpha"] = _real("alpha", self.alpha, 0.0)
        if not (self.batch_size == "auto"):
            _integer("batch_size", self.batch_size, 1)
        if self.learning_rate not in ("constant", "invscaling", "adaptive"):
            raise _bad("learning_rate", self.learning_rate, "'constant', 'invscaling' or 'adaptive'")
        p["lr"] = _real("learning_rate_init", self.learning_rate_init, 0.0, low_open=True)
        p["power_t"] = _real("power_t", self.power_t, 0.0)
        p["max_iter"] = _integer("max_iter", self.max_iter, 1)
        for name in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping"):
            if not isinstance(getattr(self, name), (bool, numbers.Integral)):
                raise _bad(name, getattr(self, name), "a bool")
        p["tol"] = _real("tol", self.tol, 0.0)
        p["momentum"] = _real("momentum", self.momentum, 0.0, 1.0)
        p["validation_fraction"] = _real("validation_fraction", self.validation_fraction, 0.0, 1.0,
                                         high_open=True)
        if self.early_stopping and p["validation_fraction"] == 0.0:
            raise ValueError("early_stopping=True needs validation_fraction > 0 (e.g. 0.1)")
        p["beta_1"] = _real("beta_1", self.beta_1, 0.0, 1.0, high_open=True)
        p["beta_2"] = _real("beta_2", self.beta_2, 0.0, 1.0, high_open=True)
        p["epsilon"] = _real("epsilon", self.epsilon, 0.0, low_open=True)
        nic = self.n_iter_no_change
        if isinstance(nic, numbers.Real) and not isinstance(nic, bool) and nic == math.inf:
            p["n_iter_no_change"] = math.inf
        else:
            p["n_iter_no_change"] = _integer("n_iter_no_change", nic, 1)
        n_hidden = len(p["hidden"])
        drop = self.dropout
        rates = [drop] * n_hidden if isinstance(drop, numbers.Real) else list(drop)
        if len(rates) != n_hidden or not all(isinstance(r, numbers.Real) and 0.0 <= r < 1.0 for r in rates):
            raise ValueError(f"dropout must be a rate in [0, 1) or one rate per hidden layer ({n_hidden}), "
                             f"got {self.dropout!r}")
        p["dropout"] = [float(r) for r in rates]
        if self.dtype is not None and str(self.dtype) not in _FLOAT_DTYPES:
            raise _bad("dtype", self.dtype, "None (follow X), 'float32' or 'float64'")
        return p

    def _compute_backend(self, in_be: Any) -> Any:
        """Where a new model trains: the input's own backend for device arrays under the
        default ``backend="numpy"``, else the named backend (and ``device``)."""
        if in_be is not None and isinstance(self.backend, str) and self.backend == "numpy" \
                and self.device is None:
            return in_be
        try:
            return _get_backend(self.backend, self.device)
        except _backends.BackendUnavailable as exc:
            raise ValueError(str(exc)) from None

    def _seed(self) -> int:
        rs = self.random_state
        if isinstance(rs, numbers.Integral) and not isinstance(rs, bool):
            if int(rs) < 0:
                raise ValueError(f"random_state must be a non-negative int, None or a RandomState, got {rs!r}")
            return int(rs)
        return int(check_random_state(rs).randint(2**31 - 1))

    # ------------------------------------------------------------------ input validation
    def _validate_X_device(self, X: Any, in_be: Any, reset: bool) -> Any:
        """Checks for a device array X (it stays where it is)."""
        xp = in_be.xp
        if getattr(X, "requires_grad", False):  # a torch tensor in an autograd graph: use its data
            X = X.detach()
        if X.ndim != 2:
            raise ValueError(f"Expected 2D array, got {X.ndim}D array instead (shape {tuple(X.shape)}). "
                             "Reshape your data either using array.reshape(-1, 1) if your data has a "
                             "single feature or array.reshape(1, -1) if it contains a single sample.")
        if X.shape[0] < 1:
            raise ValueError(f"Found array with 0 sample(s) (shape={tuple(X.shape)}) while a minimum of 1 "
                             "is required.")
        if X.shape[1] < 1:
            raise ValueError(f"Found array with 0 feature(s) (shape={tuple(X.shape)}) while a minimum of 1 "
                             "is required.")
        validate_data(self, X, reset=reset, skip_check_array=True)
        if xp.isdtype(X.dtype, "complex floating"):
            raise ValueError("Complex data not supported")
        if not xp.isdtype(X.dtype, "real floating"):
            X = xp.astype(X, in_be.dtype(_float_dtype_of(in_be, X)))
        if not bool(in_be.to_numpy(xp.all(xp.isfinite(X)))):
            raise ValueError("Input X contains NaN or infinity.")
        return X

    def _validate_X(self, X: Any, reset: bool) -> tuple[Any, Any]:
        """(validated X, its backend or None for NumPy-like input)."""
        in_be = _input_backend(X)
        if in_be is None:
            return validate_data(self, X, reset=reset, dtype=_FLOAT_DTYPES), None
        return self._validate_X_device(X, in_be, reset), in_be

    def _sample_weight(self, sample_weight: Any, n: int, be: Any, dtype: Any) -> Any:
        """Validated sample weights as a (n,) device array of the model's dtype, or None."""
        if sample_weight is None:
            return None
        xp = be.xp
        try:
            if isinstance(sample_weight, numbers.Number):
                sw = xp.full((n,), float(sample_weight), dtype=dtype, device=be.device)
            else:
                sw = be.asarray(_host(sample_weight) if _input_backend(sample_weight) != be else sample_weight)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"sample_weight could not be converted to an array of numbers: {exc}") from None
        if sw.ndim != 1 or sw.shape[0] != n:
            raise ValueError(f"sample_weight.shape == {tuple(sw.shape)}, expected {(n,)}!")
        if not xp.isdtype(sw.dtype, ("real floating", "integral", "bool")):
            raise ValueError(f"sample_weight must hold real numbers, got dtype {sw.dtype}")
        sw = xp.astype(sw, dtype)
        host = be.to_numpy(xp.stack([xp.all(xp.isfinite(sw)), xp.any(sw < 0.0), xp.all(sw == 0.0)]))
        if not bool(host[0]):
            raise ValueError("Input sample_weight contains NaN or infinity.")
        if bool(host[1]):
            raise ValueError("Negative values in data passed to sample_weight")
        if bool(host[2]):
            raise ValueError("Sample weights must contain at least one non-zero number.")
        return sw

    def _check_namespace(self, in_be: Any, method: str) -> None:
        """With array_api_dispatch on, refuse inputs from another namespace/device than fit's."""
        if not get_config().get("array_api_dispatch", False):
            return
        spec = "numpy" if in_be is None else in_be.spec
        if spec != self._input_spec:
            raise ValueError(
                f"Inputs passed to {type(self).__name__}.{method}() must use the same namespace and the "
                f"same device as those passed to fit(). fit used {self._input_spec}, {method} got {spec}. "
                f"Convert X, or refit, or disable array_api_dispatch to let the estimator convert inputs.")

    # ------------------------------------------------------------------ fitting
    def _fit(self, X: Any, y: Any, sample_weight: Any = None, incremental: bool = False,
             classes: Any = None):
        params = self._check_params()
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        fitted = hasattr(self, "model_")
        first_pass = not fitted or (not self.warm_start and not incremental)
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")

        X, in_be = self._validate_X(X, reset=first_pass)
        n, n_features = X.shape
        if first_pass:
            be = self._compute_backend(in_be)
            dtype_name = str(self.dtype) if self.dtype is not None else (
                _float_dtype_of(in_be, X) if in_be is not None else X.dtype.name)
            try:
                be.dtype(dtype_name)
            except ValueError:
                dtype_name = "float32"
        else:
            be, dtype_name = self.model_.backend, self.model_.dtype_name
        dtype = be.dtype(dtype_name)
        Y, strat = self._encode_targets(y, n, be, dtype, first_pass, incremental, classes)
        sw = self._sample_weight(sample_weight, n, be, dtype)
        k = Y.shape[1]

        if first_pass:
            self._rng_seed = self._seed()
            self._epochs_seen = 0
            self._init_model(n_features, params, be, dtype_name, k)
            self._init_bookkeeping()
            self._input_spec = "numpy" if in_be is None else in_be.spec
        elif k != self.model_.sizes[-1] or n_features != self.model_.sizes[0]:
            raise ValueError(f"the fitted network has {self.model_.sizes[0]} inputs and {self.model_.sizes[-1]} "
                             f"outputs; this data needs {n_features} and {k}")
        model = self.model_
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = self._make_optimizer(params)
        Xd = model.as_input(X)
        self._train(Xd, Y, sw, strat, params, incremental)
        return self

    def _init_model(self, n_features: int, params: dict, be: Any, dtype_name: str, k: int) -> None:
        sizes = [n_features] + params["hidden"] + [k]
        act = _ACTIVATIONS[self.activation]
        model = MLP(sizes, activation=act, output=self._output_kind(), dropout=params["dropout"],
                    init="glorot_uniform", seed=self._rng_seed, backend=be, dtype=dtype_name)
        xp, dev = model.xp, be.device
        factor = 2.0 if act == "sigmoid" else 6.0
        off_w, off_b = 0, model.n_weights
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            bound = math.sqrt(factor / (a + b))
            stream = xrandom.STREAMS["init"] + i
            if factor != 6.0:  # glorot_uniform above already drew U(±sqrt(6/(a+b))) from this key
                w = xrandom.uniform(xp, (a * b,), self._rng_seed, stream, 0, -bound, bound, model.dtype, dev)
                model.params[off_w:off_w + a * b] = w
            model.params[off_b:off_b + b] = xrandom.uniform(xp, (b,), self._rng_seed, stream, _BIAS_STREAM_COUNTER,
                                                            -bound, bound, model.dtype, dev)
            off_w, off_b = off_w + a * b, off_b + b
        self.model_ = model
        self.n_layers_ = len(sizes)
        self.n_outputs_ = k
        self.out_activation_ = _OUT_NAMES[model.output]

    def _init_bookkeeping(self) -> None:
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -math.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = math.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _make_optimizer(self, params: dict) -> Optimizer:
        if self.solver == "adam":
            return Adam(lr=params["lr"], beta1=params["beta_1"], beta2=params["beta_2"], eps=params["epsilon"])
        return _SGD(params["lr"], momentum=params["momentum"], nesterov=bool(self.nesterovs_momentum))

    def _train(self, Xd: Any, Y: Any, sw: Any, strat: Any, params: dict, incremental: bool) -> None:
        model, opt = self.model_, self._optimizer
        xp, be = model.xp, model.backend
        n = Xd.shape[0]
        weighted = sw is not None
        if weighted:
            Y = xp.concat([Y, xp.reshape(sw, (-1, 1))], axis=1)
        Xv = Yv = None
        if self.early_stopping:
            Xd, Y, Xv, Yv = self._split(Xd, Y, strat, params["validation_fraction"])
            n = Xd.shape[0]
            self._best_params = model.copy_params()
        if self.batch_size == "auto":
            batch = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be "
                              "clipped")
            batch = min(max(int(self.batch_size), 1), n)
        k = model.sizes[-1]
        loss = _Loss(model.output, k, weighted)
        alpha, nw = params["alpha"], model.n_weights
        stop_reason = None
        self.n_iter_ = 0
        for _ in range(params["max_iter"]):
            # Each batch gathers its rows of the epoch's permutation (as xpnet.fit): no shuffled dataset copy.
            perm = xrandom.permutation(xp, n, self._rng_seed, xrandom.STREAMS["shuffle"], self._epochs_seen,
                                       be.device) if self.shuffle else None
            self._epochs_seen += 1
            sums = []
            for start in range(0, n, batch):
                stop = min(start + batch, n)  # in bounds: the array API leaves overlong slices unspecified
                if perm is None:
                    xb, yb = Xd[start:stop, ...], Y[start:stop, ...]
                else:
                    idx = perm[start:stop]
                    xb, yb = xp.take(Xd, idx, axis=0), xp.take(Y, idx, axis=0)
                rows = xb.shape[0]
                if weighted:
                    value, _ = model._step(xb, yb, loss, True, 0.0)
                    if alpha:
                        s = loss.sw_sum
                        c = alpha / xp.where(s > 0.0, s, math.inf)  # alpha / S (0 for a zero-weight batch)
                        W = model.params[:nw]
                        value = value + (0.5 * c) * xp.vecdot(W, W)
                        model.grads[:nw] += c * W
                else:
                    value, _ = model._step(xb, yb, loss, True, alpha / rows)
                opt.step(model.params, model.grads)
                sums.append(value * float(rows))
            epoch_loss = _host_float(be, xp.sum(xp.stack(sums))) / n
            self.n_iter_ += 1
            self.loss_ = epoch_loss
            self.t_ += n
            self.loss_curve_.append(epoch_loss)
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {epoch_loss:.8f}")
            if not math.isfinite(epoch_loss):
                stop_reason = "non-finite"
                break
            self._update_no_improvement(Xv, Yv, weighted, params["tol"])
            if self.solver == "sgd" and self.learning_rate == "invscaling":
                opt.lr = params["lr"] / (self.t_ + 1) ** params["power_t"]
            if self._no_improvement_count > params["n_iter_no_change"]:
                what = "Validation score" if self.early_stopping else "Training loss"
                msg = (f"{what} did not improve more than tol={params['tol']:f} for "
                       f"{params['n_iter_no_change']} consecutive epochs.")
                if self._trigger_stopping(opt, msg):
                    break
                self._no_improvement_count = 0
            if incremental:
                break
            if self.n_iter_ == params["max_iter"]:
                warnings.warn(f"Stochastic Optimizer: Maximum iterations ({params['max_iter']}) reached and the "
                              "optimization hasn't converged yet.", ConvergenceWarning)
        if self.early_stopping:
            model.set_params(self._best_params)
            del self._best_params
        if stop_reason or not bool(be.to_numpy(xp.all(xp.isfinite(model.params)))):
            raise ValueError("Solver produced non-finite parameter weights. The input data may contain large "
                             "values and need to be preprocessed.")

    def _trigger_stopping(self, opt: Optimizer, msg: str) -> bool:
        if self.solver != "sgd" or self.learning_rate != "adaptive":
            if self.verbose:
                print(msg + " Stopping.")
            return True
        if opt.lr <= 1e-6:
            if self.verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        opt.lr /= 5.0
        if self.verbose:
            print(msg + f" Setting learning rate to {opt.lr:f}")
        return False

    def _split(self, Xd: Any, Y: Any, strat: Any, fraction: float) -> tuple[Any, Any, Any, Any]:
        """The early-stopping hold-out (stratified for single-label classification)."""
        be, xp = self.model_.backend, self.model_.xp
        n = Xd.shape[0]
        idx = _get_backend("numpy").xp.arange(n)
        try:
            tr, va = train_test_split(idx, test_size=fraction, random_state=self._rng_seed, stratify=strat)
        except ValueError:
            if strat is None:
                raise
            tr, va = train_test_split(idx, test_size=fraction, random_state=self._rng_seed)
        if va.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size of "
                             "your dataset.")
        tr, va = be.asarray(tr, dtype="int64"), be.asarray(va, dtype="int64")
        return xp.take(Xd, tr, axis=0), xp.take(Y, tr, axis=0), xp.take(Xd, va, axis=0), xp.take(Y, va, axis=0)

    def _update_no_improvement(self, Xv: Any, Yv: Any, weighted: bool, tol: float) -> None:
        if self.early_stopping:
            score = self._validation_score(Xv, Yv, weighted)
            self.validation_scores_.append(score)
            if self.verbose:
                print(f"Validation score: {score:f}")
            if score < self.best_validation_score_ + tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_params = self.model_.copy_params()
        else:
            last = self.loss_curve_[-1]
            if last > self.best_loss_ - tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if last < self.best_loss_:
                self.best_loss_ = last

    # ------------------------------------------------------------------ prediction helpers
    def _logits(self, X: Any, method: str) -> tuple[Any, Any]:
        """(output logits on the model's backend, the input's backend or None)."""
        check_is_fitted(self)
        in_be = _input_backend(X)
        self._check_namespace(in_be, method)
        X, in_be = self._validate_X(X, reset=False)
        return self.model_.logits(X), in_be

    def _to_output(self, a: Any, in_be: Any) -> Any:
        """An array on the model's backend, moved to the caller's namespace and device."""
        be = self.model_.backend
        if in_be is None:
            return be.to_numpy(a)
        if in_be == be:
            return a
        return in_be.asarray(be.to_numpy(a))

    # ------------------------------------------------------------------ fitted attributes
    @property
    def coefs_(self) -> list:
        """Weight matrices (fan_in, fan_out) as NumPy copies, like MLPClassifier's ``coefs_``."""
        check_is_fitted(self, "model_")
        return [self.model_.backend.to_numpy(w).copy() for w in self.model_.weights]

    @property
    def intercepts_(self) -> list:
        """Bias vectors as NumPy copies, like MLPClassifier's ``intercepts_``."""
        check_is_fitted(self, "model_")
        return [self.model_.backend.to_numpy(b).copy() for b in self.model_.biases]

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        state = dict(super().__getstate__())
        model = state.pop("model_", None)
        if model is not None:
            state["model_"] = {"spec": model.backend.spec, "state": model.state_dict()}
        opt = state.pop("_optimizer", None)
        if opt is not None:
            to_np = _backends.to_numpy
            state["_optimizer"] = {"cls": type(opt),
                                   "vars": {k: v for k, v in vars(opt).items() if k not in ("state", "xp")},
                                   "state": {k: to_np(v).copy() for k, v in opt.state.items()}}
        state.pop("_best_params", None)
        return state

    def __setstate__(self, state):
        state = dict(state)
        saved_model, saved_opt = state.pop("model_", None), state.pop("_optimizer", None)
        super().__setstate__(state)
        if saved_model is None:
            return
        try:
            be = _get_backend(saved_model["spec"])
        except (_backends.BackendUnavailable, ValueError) as exc:
            warnings.warn(f"{type(self).__name__} was pickled on backend {saved_model['spec']!r}, which is not "
                          f"available here ({exc}); loading it on NumPy", UserWarning)
            be = _get_backend("numpy")
            self._input_spec = "numpy"
        self.model_ = MLP.from_state_dict(saved_model["state"], backend=be)
        if saved_opt is not None:
            opt = saved_opt["cls"].__new__(saved_opt["cls"])
            opt.__dict__.update(saved_opt["vars"])
            opt.xp = None
            opt.state = {k: be.asarray(v) for k, v in saved_opt["state"].items()}
            self._optimizer = opt


class XPNetClassifier(ClassifierMixin, _XPNetBase):
    """Multi-layer perceptron classifier trained by xpnet (any array-API backend).

    The parameters are :class:`sklearn.neural_network.MLPClassifier`'s (stochastic
    solvers 'adam' and 'sgd'; there is no 'lbfgs', hence no ``max_fun``), with the same
    meaning and defaults, plus:

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

    Binary, multiclass (softmax output) and multilabel (0/1 indicator matrix y, logistic
    outputs) classification. See the module docstring for the exact objective (with
    ``sample_weight``), how ``alpha`` maps to xpnet's L2, seeds and array handling.

    Attributes: ``classes_``, ``n_features_in_``, ``feature_names_in_``, ``loss_``,
    ``loss_curve_``, ``best_loss_``, ``validation_scores_``, ``best_validation_score_``,
    ``n_iter_``, ``t_``, ``n_layers_``, ``n_outputs_``, ``out_activation_``, ``coefs_``,
    ``intercepts_`` (NumPy copies) and ``model_`` (the :class:`xpnet.MLP`).
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _output_kind(self) -> str:
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "sigmoid"

    def _encode_targets(self, y: Any, n: int, be: Any, dtype: Any, first_pass: bool, incremental: bool,
                        classes: Any) -> tuple[Any, Any]:
        """Labels -> (n, k) 0/1 device targets (LabelBinarizer, on the host), stratification labels."""
        y = check_array(_host(y), ensure_2d=False, dtype=None, input_name="y")
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
                self._label_binarizer.fit(y if type_of_target(y).startswith("multilabel") else _host(classes))
                self.classes_ = self._label_binarizer.classes_
            elif classes is not None and list(unique_labels(_host(classes))) != list(self.classes_):
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
        strat = y if (y.ndim == 1 and len(self.classes_) > 1) else None
        return be.asarray(Y, dtype=dtype), strat

    def _validation_score(self, Xv: Any, Yv: Any, weighted: bool) -> float:
        """Accuracy on the hold-out (subset accuracy for multilabel), weighted if weights are used."""
        model = self.model_
        xp, k = model.xp, model.sizes[-1]
        w = Yv[:, k] if weighted else None
        Y = Yv[:, :k]
        z = model.logits(Xv)
        if len(self.classes_) == 1:
            return 1.0
        if model.output == "softmax":
            hit = xp.argmax(z, axis=1) == xp.argmax(Y, axis=1)
        else:
            hit = xp.all((z > 0.0) == (Y > 0.5), axis=1)
        hit = xp.astype(hit, model.dtype)
        if w is None:
            return _host_float(model.backend, xp.mean(hit))
        return _host_float(model.backend, xp.sum(hit * w) / xp.sum(w))

    # ------------------------------------------------------------------ public API
    def fit(self, X, y, sample_weight=None):
        """Fit the network to data X (n_samples, n_features) and labels y.

        y: class labels (n_samples,) or a 0/1 indicator matrix (n_samples, n_labels) for
        multilabel. sample_weight: (n_samples,) non-negative weights (see the module
        docstring for the weighted objective). Returns self.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y); ``classes`` (all labels) is required on the first call."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True, classes=classes)

    def predict(self, X):
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
        if model.output == "softmax":
            sh = z - xp.max(z, axis=1, keepdims=True)
            if log:
                out = sh - xp.log(xp.sum(xp.exp(sh), axis=1, keepdims=True))
            else:
                es = xp.exp(sh)
                out = es / xp.sum(es, axis=1, keepdims=True)
        else:
            if log:  # log σ(z) = -softplus(-z); log(1 - σ(z)) = -softplus(z)
                soft = xp.log1p(xp.exp(-xp.abs(z)))
                pos, neg = -(xp.maximum(-z, 0.0) + soft), -(xp.maximum(z, 0.0) + soft)
            else:
                pos = model.output_layer.forward(z)[0]
                neg = 1.0 - pos
            out = pos if self._label_binarizer.y_type_ == "multilabel-indicator" else xp.concat([neg, pos], axis=1)
        return self._to_output(out, in_be)

    def predict_proba(self, X):
        """Class probabilities (n_samples, n_classes), columns ordered as ``classes_``
        (multilabel: the probability of each label)."""
        return self._proba(X, "predict_proba", log=False)

    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`, computed stably from the logits."""
        return self._proba(X, "predict_log_proba", log=True)

    def score(self, X, y, sample_weight=None):
        """Mean accuracy (subset accuracy for multilabel) as a Python float."""
        pred = _host(self.predict(X))
        sw = None if sample_weight is None else _host(sample_weight)
        return float(accuracy_score(_host(y), pred, sample_weight=sw))


class XPNetRegressor(RegressorMixin, _XPNetBase):
    """Multi-layer perceptron regressor trained by xpnet (any array-API backend).

    The parameters are :class:`sklearn.neural_network.MLPRegressor`'s (squared error only,
    so no ``loss``; stochastic solvers 'adam' and 'sgd', so no ``max_fun``), with the same
    meaning and defaults, plus
    ``backend``, ``device``, ``dropout`` and ``dtype`` as in :class:`XPNetClassifier`.
    Single- and multi-output targets; ``predict`` returns (n_samples,) for one output,
    (n_samples, n_outputs) otherwise. See the module docstring for the objective.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _output_kind(self) -> str:
        return "identity"

    def _encode_targets(self, y: Any, n: int, be: Any, dtype: Any, first_pass: bool, incremental: bool,
                        classes: Any) -> tuple[Any, Any]:
        xp = be.xp
        if _input_backend(y) == be:
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
            y = check_array(_host(y), ensure_2d=False, dtype="numeric", input_name="y")
            if y.ndim == 2 and y.shape[1] == 1:
                y = column_or_1d(y, warn=True)
            Y = be.asarray(y, dtype=dtype)
        if Y.shape[0] != n:
            raise ValueError(f"Found input variables with inconsistent numbers of samples: [{n}, {Y.shape[0]}]")
        if Y.ndim == 1:
            Y = xp.reshape(Y, (-1, 1))
        return Y, None

    def _validation_score(self, Xv: Any, Yv: Any, weighted: bool) -> float:
        """R² on the hold-out, uniformly averaged over the outputs (weighted if weights are used)."""
        model = self.model_
        xp, k = model.xp, model.sizes[-1]
        w = Yv[:, k:] if weighted else xp.ones((Yv.shape[0], 1), dtype=model.dtype, device=model.backend.device)
        Y = Yv[:, :k]
        z = model.logits(Xv)
        sw = xp.sum(w)
        mean = xp.sum(w * Y, axis=0, keepdims=True) / sw
        num = xp.sum(w * (Y - z) ** 2, axis=0)
        den = xp.sum(w * (Y - mean) ** 2, axis=0)
        r2 = xp.where(den != 0.0, 1.0 - num / xp.where(den != 0.0, den, 1.0), xp.where(num == 0.0, 1.0, 0.0))
        return _host_float(model.backend, xp.mean(r2))

    def fit(self, X, y, sample_weight=None):
        """Fit the network to X (n_samples, n_features) and targets y (n_samples,) or
        (n_samples, n_outputs), optionally with sample weights. Returns self."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), continuing from the current parameters and optimizer state."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X):
        """Predicted values: (n_samples,) for a single output, else (n_samples, n_outputs)."""
        z, in_be = self._logits(X, "predict")
        return self._to_output(z[:, 0] if z.shape[1] == 1 else z, in_be)

    def score(self, X, y, sample_weight=None):
        """R² (uniform average over outputs) as a Python float."""
        pred = _host(self.predict(X))
        sw = None if sample_weight is None else _host(sample_weight)
        return float(r2_score(_host(y), pred, sample_weight=sw))
