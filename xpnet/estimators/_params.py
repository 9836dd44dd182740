"""The estimators' hyperparameters: checked (through :mod:`xpnet._validate`) and normalized."""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from .. import _validate as check
from ..nn import Layer, layer_from_config
from ..nn.mlp import dropout_rates
from ..train.loop import scaled_closure_error
from ..nn.network import DTYPES
from ..nn.precision import Precision, as_precision

__all__ = ["Params", "check_params", "ACTIVATIONS", "STOCHASTIC"]

STOCHASTIC = ("adam", "sgd")  # the solvers that train in epochs of mini-batches ("lbfgs" is full-batch)

# scikit-learn's activation names -> xpnet's
ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "sigmoid": "sigmoid", "tanh": "tanh",
               "relu": "relu", "leaky_relu": "leaky_relu", "gelu": "gelu"}


@dataclass(frozen=True)
class Params:
    """The hyperparameters that need normalizing (the rest are read from the estimator as given)."""

    hidden: list[int]
    alpha: float
    lr: float
    power_t: float
    max_iter: int
    tol: float
    momentum: float
    validation_fraction: float
    beta_1: float
    beta_2: float
    epsilon: float
    n_iter_no_change: float
    dropout: list[float]
    max_fun: int
    loss: str | None  # the regressor's "squared_error" or "poisson"; None for the classifier
    layers: list[dict] | None  # configs of the hidden layers given as ``layers``
    precision: Precision


def _real(name: str, value: Any, low: float, high: float | None = None, **open_ends: bool) -> float:
    """:func:`xpnet._validate.real`, but +inf passes where there is no upper bound (as in
    scikit-learn's ``Interval(Real, low, None)``)."""
    if high is None and isinstance(value, numbers.Real) and value == math.inf:
        return math.inf
    return check.real(name, value, low, high, **open_ends)


def _hidden_sizes(value: Any) -> list[int]:
    sizes = [value] if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value
    try:
        return [check.integer("hidden_layer_sizes", s, low=1) for s in sizes]
    except (TypeError, ValueError):
        raise ValueError(f"hidden_layer_sizes must be a positive int or a sequence of positive ints, "
                         f"got {value!r}") from None


def _layer_configs(value: Any) -> list[dict] | None:
    """The configs of ``layers`` (xpnet layers or their JSON configs), each checked by building it."""
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"layers must be a non-empty list of xpnet layers or layer configs, got {value!r:.80}")
    configs = []
    for i, item in enumerate(value):
        if not isinstance(item, (Layer, dict)):
            raise ValueError(f"layers[{i}] must be an xpnet layer (e.g. xpnet.nn.Dense(64, activation='relu')) or "
                             f"its config dict, got {item!r:.80}")
        cfg = item.config() if isinstance(item, Layer) else item
        layer_from_config(cfg)  # ValueError for an unknown type or bad arguments
        configs.append(cfg)
    return configs


def check_params(est: Any) -> Params:
    """Validate ``est``'s hyperparameters (ValueError naming the first bad one)."""
    hidden = _hidden_sizes(est.hidden_layer_sizes)
    check.choice("activation", est.activation, ACTIVATIONS)
    check.choice("solver", est.solver, STOCHASTIC + ("lbfgs",))
    alpha = _real("alpha", est.alpha, 0.0)
    if not (isinstance(est.batch_size, str) and est.batch_size == "auto"):
        check.integer("batch_size", est.batch_size, low=1)
    check.choice("learning_rate", est.learning_rate, ("constant", "invscaling", "adaptive"))
    lr = _real("learning_rate_init", est.learning_rate_init, 0.0, low_open=True)
    power_t = _real("power_t", est.power_t, 0.0)
    max_iter = check.integer("max_iter", est.max_iter, low=1)
    for name in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping"):
        check.boolean(name, getattr(est, name))
    tol = _real("tol", est.tol, 0.0)
    momentum = check.real("momentum", est.momentum, 0.0, 1.0)
    validation_fraction = check.real("validation_fraction", est.validation_fraction, 0.0, 1.0, high_open=True)
    if est.early_stopping and validation_fraction == 0.0:
        raise ValueError("early_stopping=True needs validation_fraction > 0 (e.g. 0.1)")
    beta_1 = check.real("beta_1", est.beta_1, 0.0, 1.0, high_open=True)
    beta_2 = check.real("beta_2", est.beta_2, 0.0, 1.0, high_open=True)
    epsilon = _real("epsilon", est.epsilon, 0.0, low_open=True)
    nic = est.n_iter_no_change
    if isinstance(nic, numbers.Real) and nic == math.inf:
        n_iter_no_change: float = math.inf
    else:
        n_iter_no_change = check.integer("n_iter_no_change", nic, low=1)
    dropout = dropout_rates(est.dropout, len(hidden))
    if est.dtype is not None:
        check.choice("dtype", str(est.dtype), DTYPES)
    max_fun = check.integer("max_fun", est.max_fun, low=1)
    loss = getattr(est, "loss", None)
    if loss is not None:
        check.choice("loss", loss, ("squared_error", "poisson"))
    precision = as_precision(est.precision)
    if precision.loss_scaling and est.solver == "lbfgs":
        raise scaled_closure_error("L-BFGS (solver='lbfgs')")
    return Params(hidden, alpha, lr, power_t, max_iter, tol, momentum, validation_fraction, beta_1, beta_2,
                  epsilon, n_iter_no_change, dropout, max_fun, loss, _layer_configs(est.layers), precision)
