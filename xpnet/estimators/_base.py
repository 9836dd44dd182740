"""What :class:`XPNetClassifier` and :class:`XPNetRegressor` share: parameters, fitting through
xpnet's one training loop, fitted attributes read from the network's layout, pickling.

The network is an :class:`xpnet.MLP` of ``hidden_layer_sizes``, ``activation`` and ``dropout``, or,
with ``layers`` (a list of xpnet layers or their configs: Dense, BatchNorm1d, Dropout, Residual,
...), those layers followed by the output Dense layer; ``layers`` replaces the three (fresh copies
are built at each new fit, so the parameter itself is never modified) and each layer keeps its
own initializer.

Initialization follows scikit-learn's scheme: weights and biases ~ U(-r, r) with
r = sqrt(6 / (fan_in + fan_out)) (sqrt(2 / ...) for ``activation="logistic"``), drawn from
:mod:`xpnet.random` with the Dense layer's init stream (counter 0 for W, 1 for b), so they are
bit-identical on every backend (but are not the draws of NumPy's RandomState: results match
scikit-learn's statistically, not bitwise).

Randomness. ``random_state``: an int is used directly as the xpnet seed (init, dropout,
shuffles, the early-stopping split); ``None`` or a ``RandomState`` draw the seed from NumPy's
global generator / that generator at each (non-incremental) fit, as scikit-learn's estimators
would be nondeterministic then. Epoch e of the estimator's life (counted over warm starts and
``partial_fit`` calls) shuffles with the permutation keyed by e.

Solvers: "adam" and "sgd" run epochs of mini-batches under scikit-learn's rules (:mod:`._rules`);
"lbfgs" is one full-batch L-BFGS step (:mod:`._lbfgs`). As in scikit-learn, a run whose loss
becomes NaN/inf keeps going (with early stopping it records NaN validation scores and keeps the
best finite weights); non-finite weights at the end raise its ValueError. Sparse X (SciPy CSR/CSC
matrices and arrays) stays sparse on the device: every mini-batch is densified there, a full
batch (L-BFGS) is multiplied sparsely (see ``backends.SparseRows``), predictions go in chunks.

``precision`` ("float32", "float16", "bfloat16") is :class:`xpnet.Network`'s: the matrix products
and activations in that dtype over float32 master parameters (``dtype`` None then means float32);
float16 trains with dynamic loss scaling (a fresh :class:`xpnet.optim.LossScaler` each ``fit`` /
``partial_fit`` call) and cannot train with ``solver="lbfgs"``.

Pickling moves the parameters (and optimizer state) to NumPy and back onto the same backend on
load (NumPy, with a warning, if that backend is unavailable there).
"""
from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

import backends as _backends

from .. import _validate as check
from .. import random as xrandom
from .._xp import is_sparse
from ..nn import MLP, Dense, Network, layer_from_config
from ..nn.precision import supported
from ..optim import Adam, Optimizer
from ..train.distributed import data_parallel
from ..train.loop import Trainer, loss_scaler
from . import _arrays as arrays
from ._lbfgs import fit_lbfgs
from ._objective import SklearnLoss, SklearnSGD
from ._params import ACTIVATIONS, STOCHASTIC, Params, check_params
from ._rules import SklearnRules
from ._weights import WeightsMixin

__all__ = ["XPNetBase"]

_OUT_NAMES = {"softmax": "softmax", "sigmoid": "logistic", "identity": "identity"}


def _sklearn_init(model: Network, factor: float) -> None:
    """Every Dense layer's W and b ~ U(-r, r), r = sqrt(factor / (fan_in + fan_out)) (see the module
    docstring), written through the layout's views."""
    xp, device = model.xp, model.backend.device
    for path, stream in model.streams.items():
        entries = model.layout.of_layer(path)
        if "W" not in entries:  # a Dropout layer
            continue
        r = math.sqrt(factor / sum(entries["W"].shape))
        for entry, counter in ((entries["W"], 0), (entries["b"], 1)):
            entry.view(model.params, xp)[...] = xrandom.uniform(xp, entry.shape, model.seed, stream, counter,
                                                                -r, r, model.dtype, device)


class XPNetBase(WeightsMixin, BaseEstimator):
    """Shared machinery of :class:`XPNetClassifier` and :class:`XPNetRegressor`."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 warm_start=False, momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 max_fun=15000, backend="numpy", device=None, dropout=0.0, dtype=None, layers=None,
                 precision="float32", comm=None):
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
        self.max_fun = max_fun
        self.backend = backend
        self.device = device
        self.dropout = dropout
        self.dtype = dtype
        self.layers = layers
        self.precision = precision
        self.comm = comm

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # NumPy, array-api-strict, PyTorch and CuPy inputs are computed on where they live.
        tags.array_api_support = True
        tags.input_tags.sparse = True
        return tags

    def _check_solver(self) -> bool:
        """partial_fit exists for the stochastic solvers only (scikit-learn's rule)."""
        if self.solver not in STOCHASTIC:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. {self.solver} is not "
                                 f"stochastic.")
        return True

    # ------------------------------------------------------------------ set-up
    def _compute_backend(self, in_be: Any) -> Any:
        """Where a new model trains: the input's own backend for device arrays under the
        default ``backend="numpy"``, else the named backend (and ``device``)."""
        if in_be is not None and isinstance(self.backend, str) and self.backend == "numpy" \
                and self.device is None:
            return in_be
        try:
            return arrays.get_backend(self.backend, self.device)
        except _backends.BackendUnavailable as exc:
            raise ValueError(str(exc)) from None

    def _seed(self) -> int:
        rs = self.random_state
        if isinstance(rs, numbers.Integral) and not isinstance(rs, bool):
            return check.seed(rs, "random_state")
        return int(check_random_state(rs).randint(2**31 - 1))

    def _output_name(self) -> str:
        """``out_activation_``: scikit-learn's name of the output function."""
        return _OUT_NAMES[self._output_kind()]

    def _initialize(self, n_features: int, params: Params, be: Any, dtype_name: str, k: int) -> None:
        """A new network (scikit-learn's initialization, or the layers' own) and fresh fitted attributes."""
        if params.layers is None:
            act = ACTIVATIONS[self.activation]
            model = MLP([n_features] + params.hidden + [k], activation=act, output=self._output_kind(),
                        dropout=params.dropout, init="glorot_uniform", seed=self._rng_seed, backend=be,
                        dtype=dtype_name, precision=params.precision)
            _sklearn_init(model, 2.0 if act == "sigmoid" else 6.0)
        else:
            layers = [layer_from_config(c) for c in params.layers] + [Dense(k)]
            model = Network(layers, output=self._output_kind(), seed=self._rng_seed, backend=be,
                            dtype=dtype_name, precision=params.precision).build(n_features)
        self.model_ = model
        self.n_layers_ = len(model.weights) + 1
        self.n_outputs_ = k
        self.out_activation_ = self._output_name()
        self.n_iter_ = 0
        self.t_ = 0
        self._epochs_seen = 0
        if self.solver not in STOCHASTIC:
            return
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_, self.best_validation_score_, self.best_loss_ = [], -math.inf, None
        else:
            self.validation_scores_, self.best_validation_score_, self.best_loss_ = None, None, math.inf

    def _make_optimizer(self, params: Params) -> Optimizer:
        if self.solver == "adam":
            return Adam(lr=params.lr, beta1=params.beta_1, beta2=params.beta_2, eps=params.epsilon)
        return SklearnSGD(params.lr, momentum=params.momentum, nesterov=bool(self.nesterovs_momentum))

    # ------------------------------------------------------------------ fitting
    def _fit(self, X: Any, y: Any, sample_weight: Any = None, incremental: bool = False,
             classes: Any = None) -> "XPNetBase":
        params = check_params(self)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        # scikit-learn's first_pass: no coefs_ yet, or a fit that starts over. coefs_ assigned before any
        # fit (no network yet) shape a new network that starts from them.
        has_coefs = "model_" in self.__dict__ or "_pending_coefs" in self.__dict__
        first_pass = not has_coefs or (not self.warm_start and not incremental)
        new_model = first_pass or "model_" not in self.__dict__
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        X, in_be = arrays.validate_X(self, X, reset=first_pass)
        n, n_features = X.shape
        if new_model:
            be = self._compute_backend(in_be)
            dtype_name = str(self.dtype) if self.dtype is not None else (
                "float32" if params.precision.low else  # float16/bfloat16 compute over float32 masters
                arrays.float_dtype_of(in_be, X) if in_be is not None else X.dtype.name)
            try:
                be.dtype(dtype_name)
            except ValueError:
                dtype_name = "float32"
        else:
            self._push_weights()
            be, dtype_name = self.model_.backend, self.model_.dtype_name
        supported(params.precision, be, dtype_name)  # refused (one line) before anything changes
        dtype = be.dtype(dtype_name)
        Y, strat = self._encode_targets(y, n, be, dtype, incremental, classes)
        sw = arrays.sample_weights(sample_weight, n, be, dtype)
        k = Y.shape[1]
        if new_model:
            self._rng_seed = self._seed()
            self._initialize(n_features, params, be, dtype_name, k)
            self._input_spec = "numpy" if in_be is None else in_be.spec
            if first_pass:  # scikit-learn initializes afresh: coefs_ assigned before are dropped
                self.__dict__.pop("_pending_coefs", None)
                self.__dict__.pop("_pending_intercepts", None)
            else:
                self._take_pending()
        elif k != self.model_.n_outputs or n_features != self.model_.n_inputs:
            raise ValueError(f"the fitted network has {self.model_.n_inputs} inputs and {self.model_.n_outputs} "
                             f"outputs; this data needs {n_features} and {k}")
        else:
            self.model_.set_precision(params.precision)
        if self.solver in STOCHASTIC and (not incremental or not hasattr(self, "_optimizer")):
            self._optimizer = self._make_optimizer(params)
        self._train(self.model_.as_input(X), Y, sw, strat, params, incremental)
        self._release_weights()
        return self

    def _loss_kind(self) -> str:
        """The objective's output kind (see :class:`SklearnLoss`)."""
        return "poisson" if self.out_activation_ == "exp" else self.model_.output

    def _train(self, Xd: Any, Y: Any, sw: Any, strat: Any, params: Params, incremental: bool) -> None:
        """Run the solver, then refuse non-finite weights as scikit-learn does."""
        model = self.model_
        xp = model.xp
        weighted = sw is not None
        if weighted:
            Y = xp.concat([Y, xp.reshape(sw, (-1, 1))], axis=1)
        if self.solver == "lbfgs":
            fit_lbfgs(self, Xd, Y, params, weighted, self._loss_kind())
        else:
            self._fit_stochastic(Xd, Y, weighted, strat, params, incremental)
        if not bool(model.backend.to_numpy(xp.all(xp.isfinite(model.params)))):
            raise ValueError("Solver produced non-finite parameter weights. The input data may contain large values "
                             "and need to be preprocessed.")

    def _fit_stochastic(self, Xd: Any, Y: Any, weighted: bool, strat: Any, params: Params,
                        incremental: bool) -> None:
        """max_iter epochs (one for ``partial_fit``) of xpnet's training loop, under scikit-learn's rules."""
        model = self.model_
        validation = None
        if self.early_stopping:
            Xd, Y, Xv, Yv = self._split(Xd, Y, strat, params.validation_fraction)
            validation = (Xv, Yv, weighted)
        n = Xd.shape[0]
        if self.batch_size == "auto":
            batch = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be "
                              "clipped")
            batch = min(int(self.batch_size), n)
        loss = SklearnLoss(model.xp, self._loss_kind(), model.n_outputs, weighted, params.alpha)
        dp = self._data_parallel(weighted)
        trainer = Trainer(model, self._optimizer, loss, batch_size=batch, seed=self._rng_seed,
                          l2=loss.l2 if params.alpha else 0.0, shuffle=bool(self.shuffle),
                          callbacks=[SklearnRules(self, params, incremental, validation)], track_accuracy=False,
                          scaler=loss_scaler(model.precision), distributed=dp)
        self.n_iter_ = 0
        first = self._epochs_seen
        trainer.run(Xd, Y, first + (1 if incremental else params.max_iter), first_epoch=first)

    def _data_parallel(self, weighted: bool) -> Any:
        """The data-parallel hooks for ``comm`` (None without it); sample weights would need the global batch's
        weight sum before the step's one allreduce, so they are refused on more than one rank."""
        dp = data_parallel(self.comm, self.model_)
        if dp is not None and dp.size > 1 and weighted:
            raise ValueError("sample_weight cannot be used with comm (data-parallel training) on more than one rank: "
                             "fit without sample_weight, or on one process")
        return dp

    def _split(self, Xd: Any, Y: Any, strat: Any, fraction: float) -> tuple[Any, Any, Any, Any]:
        """The early-stopping hold-out: scikit-learn's ``train_test_split`` of the row indices.

        ``strat``: None (not stratified); a 2-D label column (binary: scikit-learn's stratification,
        with its error when a class has a single member); or 1-D labels (multiclass, which
        scikit-learn does not stratify: stratified here where every class has two members)."""
        be, xp = self.model_.backend, self.model_.xp
        idx = arrays.get_backend("numpy").xp.arange(Xd.shape[0])
        try:
            tr, va = train_test_split(idx, test_size=fraction, random_state=self._rng_seed, stratify=strat)
        except ValueError:
            if strat is None or strat.ndim == 2:
                raise
            tr, va = train_test_split(idx, test_size=fraction, random_state=self._rng_seed)
        if va.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size of "
                             "your dataset.")
        rows_tr, rows_va = be.asarray(tr, dtype="int64"), be.asarray(va, dtype="int64")
        Y_tr, Y_va = xp.take(Y, rows_tr, axis=0), xp.take(Y, rows_va, axis=0)
        if is_sparse(Xd):
            return Xd.subset(tr), Y_tr, Xd.subset(va), Y_va
        return xp.take(Xd, rows_tr, axis=0), Y_tr, xp.take(Xd, rows_va, axis=0), Y_va

    # ------------------------------------------------------------------ prediction helpers
    def _logits(self, X: Any, method: str) -> tuple[Any, Any]:
        """(output logits on the model's backend, the input's backend or None)."""
        check_is_fitted(self)
        arrays.check_namespace(self, arrays.input_backend(X), method)
        X, in_be = arrays.validate_X(self, X, reset=False)
        self._push_weights()
        return self._device_logits(self.model_.as_input(X)), in_be

    def _device_logits(self, Xd: Any) -> Any:
        """The network's logits for device input; a sparse X densified block by block."""
        model = self.model_
        if not is_sparse(Xd):
            return model.logits(Xd)
        return model.xp.concat([model.logits(Xd[i:j, ...]) for i, j in Xd.row_blocks()], axis=0)

    def _to_output(self, a: Any, in_be: Any) -> Any:
        return arrays.to_output(self.model_.backend, a, in_be)

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        if "model_" in self.__dict__:
            self._push_weights()  # edits of coefs_ / intercepts_ are part of the network
        state = dict(super().__getstate__())
        state.pop("_weights", None)  # host views of the network, rebuilt on demand
        if state.get("comm") is not None:  # a communicator is a handle of this process: it does not travel
            state["comm"] = None
        model = state.pop("model_", None)
        if model is not None:
            state["model_"] = {"spec": model.backend.spec, "state": model.state_dict()}
        opt = state.pop("_optimizer", None)
        if opt is not None:
            state["_optimizer"] = {"cls": type(opt),
                                   "vars": {k: v for k, v in vars(opt).items() if k not in ("state", "xp", "_fused")},
                                   "state": {k: _backends.to_numpy(v).copy() for k, v in opt.state.items()}}
        return state

    def __setstate__(self, state):
        state = dict(state)
        saved_model, saved_opt = state.pop("model_", None), state.pop("_optimizer", None)
        super().__setstate__(state)
        if saved_model is None:
            return
        try:
            be = arrays.get_backend(saved_model["spec"])
        except (_backends.BackendUnavailable, ValueError) as exc:
            warnings.warn(f"{type(self).__name__} was pickled on backend {saved_model['spec']!r}, which is not "
                          f"available here ({exc}); loading it on NumPy", UserWarning)
            be = arrays.get_backend("numpy")
            self._input_spec = "numpy"
        self.model_ = Network.from_state_dict(saved_model["state"], backend=be)
        if saved_opt is not None:
            opt = saved_opt["cls"].__new__(saved_opt["cls"])
            opt.__dict__.update(saved_opt["vars"])
            opt.xp = None  # bound again (with its fast path) at the next step
            opt.state = {k: be.asarray(v) for k, v in saved_opt["state"].items()}
            self._optimizer = opt
