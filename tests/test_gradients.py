"""Gradient checks: every hand-derived backward against central finite differences (float64,
on every backend, with the backend's own ``xp``) and, where torch is installed, against
torch.autograd; plus loss/sigmoid stability, a hand-worked SGD step and float32 dtype checks.

The layer and loss checks are generated from the tables ``LAYER_CASES`` and ``LOSS_CASES``
(what to build, input shapes, input range, kinks to keep away from); the whole-network checks
from ``NET_CASES`` (activation x output/loss x regularisation).

Relative error of a gradient block (one array: dW, db, dx, dz, ...) is normwise:
``max|analytic - numeric| / max|numeric|``, so a wrong bias gradient is not hidden by large
weight gradients. Kinks (ReLU/LeakyReLU at 0) are avoided as in Chainer's check_backward: inputs
are kept at least ``KINK_MARGIN`` (>> the FD step) away from them; in the whole-network check,
samples whose hidden pre-activations come closer than ``NET_KINK_MARGIN`` to 0 are dropped.
"""

from __future__ import annotations

import math
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

import array_api_compat
import numpy as np
import pytest

import xpnet
from backends import Backend
from tests.helpers import assert_close, assert_equal, to_numpy
from xpnet import nn
from xpnet.nn import losses

try:
    import torch
except ImportError:  # the torch oracle tests skip
    torch = None

FD_EPS = 1e-5  # central-difference step (float64): truncation ~eps², round-off ~1e-16/eps
FD_RTOL = 1e-6  # required normwise relative error
KINK_MARGIN = 1e-2  # layer inputs stay this far from a kink (>> FD_EPS)
NET_KINK_MARGIN = 1e-3  # hidden pre-activations stay this far from 0 (>> FD_EPS * |dz/dθ|)
TORCH_RTOL = 1e-10


# ============================================================== helpers
def _scalar(a: Any) -> float:
    """A 0-d array of any backend (any device) as a Python float."""
    return float(to_numpy(a))


def _host(a: Any) -> np.ndarray:
    """A host copy (never a view) of an array of any backend."""
    return np.array(to_numpy(a), dtype=np.float64, copy=True)


def central_differences(f: Callable[[], float], a: Any, coords: list[tuple[int, ...]],
                        eps: float = FD_EPS) -> np.ndarray:
    """d f / d a[idx] for each idx in ``coords`` by central differences.

    ``a`` is a float64 backend array that ``f`` reads (directly or through views); it is
    perturbed in place with the backend's own setitem and restored exactly afterwards.
    The denominator is the step actually taken, (x0 + eps) - (x0 - eps) in float64.
    """
    out = np.empty(len(coords))
    for n, idx in enumerate(coords):
        x0 = float(to_numpy(a)[idx])
        hi, lo = x0 + eps, x0 - eps
        a[idx] = hi
        f_hi = f()
        a[idx] = lo
        f_lo = f()
        a[idx] = x0
        out[n] = (f_hi - f_lo) / (hi - lo)
    return out


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """Normwise relative error max|a - n| / max|n| (0 if both vanish)."""
    analytic, numeric = np.asarray(analytic, float), np.asarray(numeric, float)
    scale = max(float(np.max(np.abs(numeric))), 1e-300)
    return float(np.max(np.abs(analytic - numeric)) / scale)


def assert_gradient(name: str, analytic: Any, numeric: np.ndarray, rtol: float = FD_RTOL) -> None:
    a = np.asarray(to_numpy(analytic), dtype=np.float64).reshape(numeric.shape)
    assert np.all(np.isfinite(a)), f"{name}: non-finite analytic gradient"
    assert np.max(np.abs(numeric)) > 0.0, f"{name}: numeric gradient vanishes; the check would be vacuous"
    err = relative_error(a, numeric)
    assert err < rtol, (f"{name}: relative error {err:.3e} >= {rtol:g}\nanalytic={a.ravel()}\n"
                        f"numeric ={numeric.ravel()}")


def all_coords(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    return [tuple(int(i) for i in idx) for idx in np.ndindex(*shape)]


def away_from_kinks(x: np.ndarray, kinks: tuple[float, ...], margin: float) -> np.ndarray:
    """Push every entry at least ``margin`` away from each kink, keeping its side."""
    for k in kinks:
        d = x - k
        x = np.where(np.abs(d) < margin, k + np.copysign(margin, d) + d, x)
    for k in kinks:
        assert np.min(np.abs(x - k)) >= margin * (1 - 1e-12)
    return x


def check_array(a: Any, backend: Backend, dtype: str, shape: tuple[int, ...] | None = None) -> None:
    """``a`` is an array of ``backend``'s namespace, on its device, of ``dtype`` (and shape)."""
    assert array_api_compat.array_namespace(a) is backend.xp
    assert array_api_compat.device(a) == backend.device
    assert a.dtype == backend.dtype(dtype), f"dtype {a.dtype}, expected {dtype}"
    if shape is not None:
        assert tuple(a.shape) == tuple(shape)


@contextmanager
def no_fp_warnings():
    """Turn warnings (and NumPy overflow / invalid / divide-by-zero) into errors.

    Underflow to 0 is the intended, harmless behaviour of the stable formulas, so it is allowed.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
            yield


# ============================================================== the layer table
def _dense(xp: Any, backend: Backend, rng: np.random.Generator, dtype: str, fan_in: int = 4,
           fan_out: int = 3) -> nn.Dense:
    layer = nn.Dense(fan_in, fan_out)
    nn.standalone(layer, fan_in, backend=backend, dtype=dtype)
    layer.W[...] = backend.asarray(rng.normal(size=(fan_in, fan_out)), dtype=dtype)
    layer.b[...] = backend.asarray(rng.normal(size=(fan_out,)), dtype=dtype)
    return layer


def _dropout(xp: Any, backend: Backend, rng: np.random.Generator, dtype: str, rate: float = 0.3,
             width: int = 6) -> nn.Dropout:
    layer = nn.Dropout(rate)
    nn.standalone(layer, width, backend=backend, dtype=dtype, seed=7)
    assert layer.stream == xpnet.random.STREAMS["dropout"]
    return layer


def _activation(cls: type, **kw: Any) -> Callable[..., Any]:
    def make(xp: Any, backend: Backend, rng: np.random.Generator, dtype: str) -> Any:
        layer = cls(**kw)
        nn.standalone(layer, 4, backend=backend, dtype=dtype)
        return layer
    return make


@dataclass(frozen=True)
class LayerCase:
    """A layer to check: factory, input shape and range, kinks to avoid, parameter names."""

    id: str
    make: Callable[..., Any]  # (xp, backend, rng, dtype) -> layer
    x_shape: tuple[int, int] = (6, 4)
    low: float = -3.0
    high: float = 3.0
    kinks: tuple[float, ...] = ()
    params: tuple[tuple[str, str], ...] = ()  # (parameter attribute, gradient attribute)
    training: bool = False


LAYER_CASES = [
    LayerCase("dense", _dense, x_shape=(5, 4), params=(("W", "grad_W"), ("b", "grad_b"))),
    LayerCase("dense_1x1", partial(_dense, fan_in=1, fan_out=1), x_shape=(3, 1),
              params=(("W", "grad_W"), ("b", "grad_b"))),
    LayerCase("relu", _activation(nn.ReLU), kinks=(0.0,)),
    LayerCase("leaky_relu", _activation(nn.LeakyReLU), kinks=(0.0,)),
    LayerCase("leaky_relu_alpha0.2", _activation(nn.LeakyReLU, alpha=0.2), kinks=(0.0,)),
    LayerCase("sigmoid", _activation(nn.Sigmoid), low=-8.0, high=8.0),
    LayerCase("tanh", _activation(nn.Tanh)),
    LayerCase("gelu", _activation(nn.GELU), low=-5.0, high=5.0),
    LayerCase("identity", _activation(nn.Identity)),
    LayerCase("softmax", _activation(nn.Softmax), x_shape=(4, 5), low=-4.0, high=4.0),
    LayerCase("softmax_large_logits", _activation(nn.Softmax), x_shape=(3, 4), low=50.0, high=54.0),
    LayerCase("dropout", _dropout, x_shape=(7, 6), training=True),
    LayerCase("dropout_rate0.75", partial(_dropout, rate=0.75, width=8), x_shape=(5, 8), training=True),
]


def _run_layer(layer: Any, x: Any, training: bool) -> tuple[Any, Any]:
    """Forward with a fixed dropout mask: the counter is reset so every call draws mask #0."""
    if isinstance(layer, nn.Dropout):
        layer.counter = 0
    return layer.forward(x, training)


@pytest.mark.parametrize("case", LAYER_CASES, ids=lambda c: c.id)
def test_layer_gradients_match_finite_differences(case: LayerCase, backend: Backend) -> None:
    xp = backend.xp
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    layer = case.make(xp, backend, rng, "float64")
    x_host = away_from_kinks(rng.uniform(case.low, case.high, size=case.x_shape), case.kinks, KINK_MARGIN)
    x = backend.asarray(x_host, dtype="float64")
    y, cache = _run_layer(layer, x, case.training)
    R = backend.asarray(rng.normal(size=tuple(y.shape)), dtype="float64")  # objective: Σ R ⊙ y

    def objective() -> float:
        return _scalar(xp.sum(R * _run_layer(layer, x, case.training)[0]))

    dx = layer.backward(R, cache)
    check_array(dx, backend, "float64", case.x_shape)
    blocks = {"dx": (x, _host(dx))}
    for p_name, g_name in case.params:
        blocks["d" + p_name] = (getattr(layer, p_name), _host(getattr(layer, g_name)))
    if isinstance(layer, nn.Dropout):  # the cache is the documented mask of forward #0
        assert_equal(cache, layer.mask(case.x_shape, xp.float64, 0), backend=backend)
        keep = to_numpy(cache) != 0.0
        assert keep.any() and (~keep).any(), "degenerate mask: choose another shape/seed"
    for name, (arr, analytic) in blocks.items():
        numeric = central_differences(objective, arr, all_coords(tuple(arr.shape)))
        assert_gradient(f"{case.id} {name}", analytic, numeric.reshape(tuple(arr.shape)))


def test_dense_first_layer_skips_dx(backend: Backend) -> None:
    rng = np.random.default_rng(0)
    x = backend.asarray(rng.normal(size=(4, 3)))
    dy = backend.asarray(rng.normal(size=(4, 2)))
    model = xpnet.Network([nn.Dense(3, 2), nn.Dense(2, 2)], backend=backend, dtype="float64")
    layer = model.layers[0]  # the network's first layer: nothing trainable before it
    assert not layer.need_dx and model.layers[1].need_dx
    assert layer.backward(dy, layer.forward(x)[1]) is None
    assert_close(layer.grad_W, to_numpy(x).T @ to_numpy(dy), backend=backend)
    assert_close(layer.grad_b, to_numpy(dy).sum(axis=0), backend=backend)


@pytest.mark.parametrize("case", LAYER_CASES, ids=lambda c: c.id)
def test_layer_float32_stays_float32(case: LayerCase, backend: Backend) -> None:
    xp, rng = backend.xp, np.random.default_rng(1)
    layer = case.make(xp, backend, rng, "float32")
    x = backend.asarray(rng.uniform(case.low, case.high, size=case.x_shape), dtype="float32")
    y, cache = _run_layer(layer, x, case.training)
    check_array(y, backend, "float32")
    dx = layer.backward(backend.asarray(np.ones(tuple(y.shape)), dtype="float32"), cache)
    check_array(dx, backend, "float32", case.x_shape)
    for _, g_name in case.params:
        check_array(getattr(layer, g_name), backend, "float32")


# ============================================================== the loss table
@dataclass(frozen=True)
class LossCase:
    """A loss (or penalty) to check: fn(xp, z[, Y]) -> (value, d value / dz)."""

    id: str
    fn: Callable[..., tuple[Any, Any]]
    shape: tuple[int, ...]
    targets: str  # "binary" | "onehot" | "labels" (one-hot via MLP.targets) | "real" | "none"
    low: float = -4.0
    high: float = 4.0
    kinks: tuple[float, ...] = field(default=())


LOSS_CASES = [
    LossCase("bce", losses.binary_cross_entropy, (6, 1), "binary"),
    LossCase("bce_multilabel", losses.binary_cross_entropy, (5, 3), "binary", low=-9.0, high=9.0),
    LossCase("softmax_ce_onehot", losses.softmax_cross_entropy, (5, 4), "onehot"),
    LossCase("softmax_ce_labels_via_targets", losses.softmax_cross_entropy, (6, 3), "labels"),
    LossCase("softmax_ce_shifted_logits", losses.softmax_cross_entropy, (4, 3), "onehot", low=96.0, high=100.0),
    LossCase("mse", losses.mse, (5, 2), "real"),
    LossCase("mse_single_output", losses.mse, (7, 1), "real"),
    LossCase("l2_penalty", partial(losses.l2_penalty, lam=0.37), (17,), "none"),
]


def _loss_targets(case: LossCase, backend: Backend, rng: np.random.Generator, dtype: str) -> Any:
    """The target array Y (None for a penalty); integer labels go through ``MLP.targets``."""
    n = case.shape[0]
    k = case.shape[1] if len(case.shape) > 1 else 1
    if case.targets == "none":
        return None
    if case.targets == "binary":
        Y = (rng.uniform(size=case.shape) < 0.5).astype(float)
        Y.flat[0], Y.flat[1] = 0.0, 1.0
        return backend.asarray(Y, dtype=dtype)
    if case.targets == "real":
        return backend.asarray(rng.normal(size=case.shape), dtype=dtype)
    labels = rng.integers(0, k, size=n)
    labels[:k] = np.arange(k)  # every class present
    expected = np.eye(k)[labels]
    if case.targets == "onehot":
        Y = losses.one_hot(backend.xp, backend.asarray(labels), k, backend.dtype(dtype))
    else:
        model = xpnet.MLP([2, k], output="softmax", backend=backend, dtype=dtype)
        Y = model.targets(backend.asarray(labels))
    check_array(Y, backend, dtype, case.shape)
    assert_equal(Y, expected.astype(dtype), backend=backend)
    return Y


def _call_loss(case: LossCase, xp: Any, z: Any, Y: Any) -> tuple[Any, Any]:
    return case.fn(xp, z) if Y is None else case.fn(xp, z, Y)


@pytest.mark.parametrize("case", LOSS_CASES, ids=lambda c: c.id)
def test_loss_gradients_match_finite_differences(case: LossCase, backend: Backend) -> None:
    xp = backend.xp
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    z_host = away_from_kinks(rng.uniform(case.low, case.high, size=case.shape), case.kinks, KINK_MARGIN)
    z = backend.asarray(z_host, dtype="float64")
    Y = _loss_targets(case, backend, rng, "float64")
    value, grad = _call_loss(case, xp, z, Y)
    check_array(value, backend, "float64", ())
    check_array(grad, backend, "float64", case.shape)
    numeric = central_differences(lambda: _scalar(_call_loss(case, xp, z, Y)[0]), z, all_coords(case.shape))
    assert_gradient(case.id, grad, numeric.reshape(case.shape))


@pytest.mark.parametrize("case", LOSS_CASES, ids=lambda c: c.id)
def test_loss_float32_stays_float32(case: LossCase, backend: Backend) -> None:
    rng = np.random.default_rng(2)
    z = backend.asarray(rng.uniform(case.low, case.high, size=case.shape), dtype="float32")
    value, grad = _call_loss(case, backend.xp, z, _loss_targets(case, backend, rng, "float32"))
    check_array(value, backend, "float32", ())
    check_array(grad, backend, "float32", case.shape)


# ============================================================== whole networks
ACTIVATIONS = ["relu", "leaky_relu", "sigmoid", "tanh", "gelu", "identity"]
# (output, loss, output units, target kind)
HEADS = [("sigmoid", "bce", 1, "binary"), ("softmax", "cross_entropy", 3, "labels"),
         ("identity", "mse", 2, "real")]
EXTRA_HEADS = [("sigmoid", "bce", 2, "binary"),  # multi-label
               ("sigmoid", "mse", 2, "binary"), ("softmax", "mse", 3, "onehot")]  # through the output's backward


@dataclass(frozen=True)
class NetCase:
    activation: str
    output: str
    loss: str
    k: int
    targets: str
    dropout: float = 0.0
    l2: float = 0.0

    @property
    def id(self) -> str:
        reg = "plain" if not (self.dropout or self.l2) else f"dropout{self.dropout}-l2{self.l2}"
        return f"{self.activation}-{self.output}{self.k}/{self.loss}-{reg}"


NET_CASES = [NetCase(a, o, loss, k, t, dropout=d, l2=l2)
             for a in ACTIVATIONS for (o, loss, k, t) in HEADS for (d, l2) in [(0.0, 0.0), (0.3, 0.05)]]
NET_CASES += [NetCase("tanh", o, loss, k, t, dropout=0.25, l2=0.1) for (o, loss, k, t) in EXTRA_HEADS]
NET_CASES += [NetCase("relu", "softmax", "cross_entropy", 3, "labels", dropout=0.5),  # dropout alone
              NetCase("gelu", "identity", "mse", 2, "real", l2=0.2)]  # L2 alone


def _net_data(case: NetCase, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(size=(n, 3))
    if case.targets == "binary":
        y = (rng.uniform(size=(n, case.k)) < 0.5).astype(float)
        y = y[:, 0] if case.k == 1 else y  # (n,) labels for one unit
    elif case.targets == "labels":
        y = rng.integers(0, case.k, size=n)
    elif case.targets == "onehot":
        y = np.eye(case.k)[rng.integers(0, case.k, size=n)]
    else:
        y = rng.normal(size=(n, case.k))
    return X, y


def _net_targets_host(case: NetCase, y: np.ndarray) -> np.ndarray:
    """The (n, k) float targets, computed independently of xpnet."""
    if case.targets == "labels":
        return np.eye(case.k)[y]
    return y.reshape(len(y), -1).astype(float)


def _build_net(case: NetCase, backend: Backend, dtype: str = "float64", n: int = 10,
               seed: int = 0) -> tuple[xpnet.MLP, np.ndarray, np.ndarray]:
    """A [3, 5, 4, k] model with random nonzero biases, its data, and dropout counters set to 3."""
    rng = np.random.default_rng(seed + zlib.crc32(case.id.encode()) % 1000)
    model = xpnet.MLP([3, 5, 4, case.k], activation=case.activation, output=case.output,
                      dropout=case.dropout, seed=seed + 11, backend=backend, dtype=dtype)
    n_bias = model.n_params - model.n_weights
    model.params[model.n_weights:] = backend.asarray(rng.normal(scale=0.3, size=n_bias), dtype=dtype)
    for layer in model.dropout_layers:
        layer.counter = 3
    X, y = _net_data(case, n, rng)
    return model, X, y


def _hidden_preactivations(model: xpnet.MLP, X: Any) -> list[np.ndarray]:
    """Inputs of the hidden activations in the next training forward (counters left unchanged):
    z = x W + b of every Dense with an activation, from the input x it receives."""
    pre = []
    with model.frozen_state():
        a = X
        for layer in model.layers:
            if isinstance(layer, nn.Dense) and layer.activation is not None:
                pre.append(_host(a @ layer.W + layer.b))
            a, _ = layer.forward(a, True)
    return pre


def _away_from_kinks_net(model: xpnet.MLP, backend: Backend, X: np.ndarray,
                         y: np.ndarray) -> tuple[Any, Any]:
    """Drop samples whose hidden pre-activations lie within NET_KINK_MARGIN of 0.

    The dropout mask depends on the batch shape, so repeat until every sample qualifies.
    """
    for _ in range(20):
        Xb = backend.asarray(X, dtype=model.dtype_name)
        ok = np.ones(len(X), dtype=bool)
        for pre in _hidden_preactivations(model, Xb):
            ok &= np.min(np.abs(pre), axis=1) > NET_KINK_MARGIN
        if ok.all():
            assert len(X) >= 4, "too few samples left away from the kinks"
            return Xb, backend.asarray(y)
        X, y = X[ok], y[ok]
    raise AssertionError("could not keep the hidden pre-activations away from the kinks")


def _fixed_mask_loss(model: xpnet.MLP, Xb: Any, yb: Any, case: NetCase) -> Callable[[], float]:
    """The loss as a function of model.params, always with the same dropout masks."""
    counters = [d.counter for d in model.dropout_layers]

    def f() -> float:
        for d, c in zip(model.dropout_layers, counters):
            d.counter = c
        return _scalar(model.loss_and_grads(Xb, yb, loss=case.loss, l2=case.l2)[0])

    return f


def _block_slices(model: xpnet.MLP) -> list[tuple[str, int, int]]:
    """(name, start, stop) of each parameter block in the flat buffer (from the layout)."""
    return [(e.name, e.offset, e.stop) for e in model.layout.params]


@pytest.mark.parametrize("case", NET_CASES, ids=lambda c: c.id)
def test_network_gradients_match_finite_differences(case: NetCase, backend: Backend) -> None:
    model, X, y = _build_net(case, backend)
    Xb, yb = _away_from_kinks_net(model, backend, X, y)
    f = _fixed_mask_loss(model, Xb, yb, case)
    counters = [d.counter for d in model.dropout_layers]
    value = f()  # analytic pass (and resets the counters first)
    assert [d.counter for d in model.dropout_layers] == [c + 1 for c in counters]  # one forward, one step
    analytic = _host(model.grads)
    check_array(model.grads, backend, "float64", (model.n_params,))
    rng = np.random.default_rng(5)
    for name, start, stop in _block_slices(model):
        idx = np.sort(rng.choice(np.arange(start, stop), size=min(3, stop - start), replace=False))
        numeric = central_differences(f, model.params, [(int(i),) for i in idx])
        assert_gradient(f"{case.id} {name}{idx.tolist()}", analytic[idx], numeric)
    assert f() == value  # parameters restored exactly, same masks


# -------------------------------------------------------------- torch.autograd oracle
def _torch_reference(case: NetCase, model: xpnet.MLP, X: np.ndarray, Y: np.ndarray,
                     masks: list[np.ndarray | None]) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
    """Loss and gradients of the same network built from plain torch ops, by autograd."""
    f64 = torch.float64
    Ws = [torch.tensor(to_numpy(w), dtype=f64, requires_grad=True) for w in model.weights]
    bs = [torch.tensor(to_numpy(b), dtype=f64, requires_grad=True) for b in model.biases]
    act = {"relu": torch.relu, "leaky_relu": lambda t: torch.nn.functional.leaky_relu(t, 0.01),
           "sigmoid": torch.sigmoid, "tanh": torch.tanh,
           "gelu": lambda t: torch.nn.functional.gelu(t, approximate="tanh"), "identity": lambda t: t}
    a = torch.tensor(X, dtype=f64)
    Yt = torch.tensor(Y, dtype=f64)
    for i, (W, b) in enumerate(zip(Ws, bs)):
        a = a @ W + b
        if i < len(Ws) - 1:
            a = act[case.activation](a)
            if masks[i] is not None:
                a = a * torch.tensor(masks[i], dtype=f64)
    z = a
    if case.loss == "bce":
        logsig = torch.nn.functional.logsigmoid
        value = -(Yt * logsig(z) + (1.0 - Yt) * logsig(-z)).mean()
    elif case.loss == "cross_entropy":
        value = -(Yt * torch.log_softmax(z, dim=1)).sum() / z.shape[0]
    else:
        out = {"sigmoid": torch.sigmoid, "softmax": lambda t: torch.softmax(t, dim=1),
               "identity": lambda t: t}[case.output](z)
        value = ((out - Yt) ** 2).mean()
    if case.l2:
        value = value + 0.5 * case.l2 * sum((W * W).sum() for W in Ws)
    value.backward()
    return float(value.detach()), [W.grad.numpy() for W in Ws], [b.grad.numpy() for b in bs]


def _assert_matches_torch(name: str, actual: Any, desired: np.ndarray, backend: Backend) -> None:
    """Elementwise rtol TORCH_RTOL, with an absolute floor of TORCH_RTOL x the array's scale."""
    assert_close(actual, desired, rtol=TORCH_RTOL, atol=TORCH_RTOL * float(np.max(np.abs(desired))),
                 backend=backend)


@pytest.mark.skipif(torch is None, reason="torch is not installed")
@pytest.mark.parametrize("case", NET_CASES, ids=lambda c: c.id)
def test_network_gradients_match_torch_autograd(case: NetCase, backend: Backend) -> None:
    model, X, y = _build_net(case, backend, n=12, seed=100)
    Xb, yb = backend.asarray(X), backend.asarray(y)
    n = X.shape[0]
    # The masks of the coming training forward, from xpnet's own Dropout.mask (one per hidden layer).
    masks: list[np.ndarray | None] = [None] * (len(model.sizes) - 2)
    for i, d in enumerate(model.dropout_layers):
        masks[i] = _host(d.mask((n, model.sizes[i + 1]), model.dtype, d.counter))
        assert 0 < np.count_nonzero(masks[i]) < masks[i].size or d.p == 0.0
    value, wg, bg = model.loss_and_grads(Xb, yb, loss=case.loss, l2=case.l2)
    ref_value, ref_wg, ref_bg = _torch_reference(case, model, X, _net_targets_host(case, y), masks)
    assert_close(value, np.float64(ref_value), rtol=1e-12, backend=backend)
    for i, (g, ref) in enumerate(zip(wg, ref_wg)):
        _assert_matches_torch(f"dW{i}", g, ref, backend)
    for i, (g, ref) in enumerate(zip(bg, ref_bg)):
        _assert_matches_torch(f"db{i}", g, ref, backend)


# -------------------------------------------------------------- float32 networks
@pytest.mark.parametrize("head", HEADS + EXTRA_HEADS, ids=lambda h: f"{h[0]}{h[2]}/{h[1]}")
def test_network_float32_gradients_are_float32(head: tuple, backend: Backend) -> None:
    case = NetCase("gelu", *head, dropout=0.2, l2=0.01)
    model, X, y = _build_net(case, backend, dtype="float32")
    value, wg, bg = model.loss_and_grads(X, y, loss=case.loss, l2=case.l2)
    check_array(value, backend, "float32", ())
    check_array(model.grads, backend, "float32", (model.n_params,))
    check_array(model.params, backend, "float32", (model.n_params,))
    for g, w in zip(wg + bg, model.weights + model.biases):
        check_array(g, backend, "float32", tuple(w.shape))
    assert np.isfinite(_host(model.grads)).all() and np.any(_host(model.grads) != 0.0)


# ============================================================== stability of values
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bce_from_logits_exact_at_huge_logits(backend: Backend, dtype: str) -> None:
    # Per element ℓ = max(z,0) - y z + log1p(e^{-|z|}):
    #   z=+1e4,y=1 -> 0;  z=-1e4,y=0 -> 0;  z=+1e4,y=0 -> 1e4;  z=-1e4,y=1 -> 1e4.
    # mean = 2e4 / 4 = 5000.  dℓ/dz = (σ(z) - y)/4 with σ(±1e4) = 1, 0 exactly:
    #   (1-1)/4 = 0, (0-0)/4 = 0, (1-0)/4 = 0.25, (0-1)/4 = -0.25.
    z = backend.asarray([[1e4], [-1e4], [1e4], [-1e4]], dtype=dtype)
    Y = backend.asarray([[1.0], [0.0], [0.0], [1.0]], dtype=dtype)
    with no_fp_warnings():
        value, grad = losses.binary_cross_entropy(backend.xp, z, Y)
    assert_equal(value, np.asarray(5000.0, dtype=dtype), backend=backend)
    assert_equal(grad, np.array([[0.0], [0.0], [0.25], [-0.25]], dtype=dtype), backend=backend)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_cross_entropy_stable_at_huge_logits(backend: Backend, dtype: str) -> None:
    # s = z - max z.  row 0, label 0: s = [0, -1e4, -2e4], log Σe^s = log 1 = 0 -> ℓ = 0.
    # row 1, label 1: same s -> ℓ = -s_1 = 1e4.  row 2, label 0: s = [0, 0, -2e3] -> ℓ = log 2.
    # value = (1e4 + log 2)/3.  grad = (softmax - Y)/3 with softmax rows [1,0,0], [1,0,0], [½,½,0].
    z = backend.asarray([[1e4, 0.0, -1e4], [1e4, 0.0, -1e4], [1e3, 1e3, -1e3]], dtype=dtype)
    Y = backend.asarray(np.eye(3)[[0, 1, 0]], dtype=dtype)
    with no_fp_warnings():
        value, grad = losses.softmax_cross_entropy(backend.xp, z, Y)
    rtol = 1e-12 if dtype == "float64" else 1e-6
    assert_close(value, np.asarray((1e4 + math.log(2.0)) / 3.0, dtype=dtype), rtol=rtol, backend=backend)
    expected = np.array([[0.0, 0.0, 0.0], [1.0, -1.0, 0.0], [-0.5, 0.5, 0.0]]) / 3.0
    assert_close(grad, expected.astype(dtype), rtol=rtol, atol=1e-30, backend=backend)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_stable_in_both_tails(backend: Backend, dtype: str) -> None:
    points = [-1e4, -1000.0, -80.0, -30.0, -1.0, 0.0, 1.0, 30.0, 80.0, 1000.0, 1e4]
    if dtype == "float64":
        points += [-700.0, 700.0]
    # Reference from the two one-sided forms, each free of overflow and cancellation.
    expected = np.array([math.exp(x) / (1.0 + math.exp(x)) if x < 0 else 1.0 / (1.0 + math.exp(-x))
                         for x in points])
    x = backend.asarray(points, dtype=dtype)
    xp = backend.xp
    with no_fp_warnings():
        y_fn = nn.sigmoid(xp, x)
        layer = nn.Sigmoid()
        nn.standalone(layer, 1, backend=backend, dtype=dtype)
        y, cache = layer.forward(x)
        dx = layer.backward(xp.ones_like(x), cache)
    rtol = 1e-12 if dtype == "float64" else 1e-6
    assert_equal(y, y_fn, backend=backend)
    assert_close(y, expected.astype(dtype), rtol=rtol, backend=backend)
    host = to_numpy(y)
    assert host[points.index(-1000.0)] == 0.0 and host[points.index(-1e4)] == 0.0  # σ(-1000) = 0
    assert host[points.index(1000.0)] == 1.0 and host[points.index(0.0)] == 0.5
    assert np.all(np.isfinite(to_numpy(dx))) and to_numpy(dx)[points.index(-1000.0)] == 0.0
    # A whole model with saturated output: probabilities 0 and 1, no NaN, no warnings.
    model = xpnet.MLP([1, 1], output="sigmoid", backend=backend, dtype=dtype)
    model.weights[0][...] = backend.asarray([[1e4]], dtype=dtype)
    with no_fp_warnings():
        p = model.forward(backend.asarray([[-1.0], [1.0]], dtype=dtype))
    assert_equal(p, np.array([[0.0], [1.0]], dtype=dtype), backend=backend)


def test_softmax_output_stable_at_huge_logits(backend: Backend) -> None:
    x = backend.asarray([[1e4, 0.0, -1e4], [-1e300, 1e300, 0.0]])
    layer = nn.Softmax()
    nn.standalone(layer, 3, backend=backend, dtype="float64")
    with no_fp_warnings():
        y, _ = layer.forward(x)
    assert_equal(y, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), backend=backend)


# ============================================================== hand-worked SGD steps
def test_hand_worked_sgd_step_relu_sigmoid_bce_l2(backend: Backend) -> None:
    """[2, 2, 1], ReLU hidden, sigmoid output, BCE, L2 λ = 0.5, SGD lr = 0.5, one sample.

    x = [1, 2], y = 1.  W0 = [[0.5, -1], [0.25, 0.5]], b0 = [0, -0.5], W1 = [[0.5], [2]], b1 = [-0.5].
    Forward: h_pre = [1·0.5 + 2·0.25 + 0, 1·(-1) + 2·0.5 - 0.5] = [1, -0.5]; h = relu = [1, 0];
             z = 1·0.5 + 0·2 - 0.5 = 0; p = σ(0) = 0.5.
    Loss: BCE = -log 0.5 = log 2 = 0.6931471805599453;
          L2 = λ/2 ΣW² = 0.25 · (0.25 + 1 + 0.0625 + 0.25 + 0.25 + 4) = 0.25 · 5.8125 = 1.453125.
    Backward: dz = p - y = -0.5.  dW1 = hᵀ dz = [[-0.5], [0]]; db1 = [-0.5].
              dh = dz W1ᵀ = [-0.25, -1]; relu' = [1, 0] -> dh_pre = [-0.25, 0].
              dW0 = xᵀ dh_pre = [[-0.25, 0], [-0.5, 0]]; db0 = [-0.25, 0].
              + λW: dW0 += [[0.25, -0.5], [0.125, 0.25]] -> [[0, -0.5], [-0.375, 0.25]];
                    dW1 += [[0.25], [1]] -> [[-0.25], [1]].
    SGD (lr 0.5): W0 = [[0.5 - 0, -1 + 0.25], [0.25 + 0.1875, 0.5 - 0.125]] = [[0.5, -0.75], [0.4375, 0.375]];
                  b0 = [0 + 0.125, -0.5 - 0] = [0.125, -0.5];
                  W1 = [[0.5 + 0.125], [2 - 0.5]] = [[0.625], [1.5]]; b1 = [-0.5 + 0.25] = [-0.25].
    New logit: h_pre = [0.5 + 0.875 + 0.125, -0.75 + 0.75 - 0.5] = [1.5, -0.5]; z = 1.5·0.625 - 0.25 = 0.6875.
    Every number is a dyadic rational (except log 2), so the results are exact.
    """
    model = xpnet.MLP([2, 2, 1], activation="relu", output="sigmoid", backend=backend, dtype="float64")
    model.weights[0][...] = backend.asarray([[0.5, -1.0], [0.25, 0.5]])
    model.biases[0][...] = backend.asarray([0.0, -0.5])
    model.weights[1][...] = backend.asarray([[0.5], [2.0]])
    model.biases[1][...] = backend.asarray([-0.5])
    X, y = backend.asarray([[1.0, 2.0]]), backend.asarray([1.0])
    value, wg, bg = model.loss_and_grads(X, y, loss="bce", l2=0.5)
    assert_close(value, np.float64(0.6931471805599453 + 1.453125), rtol=1e-15, backend=backend)
    assert_equal(wg[0], np.array([[0.0, -0.5], [-0.375, 0.25]]), backend=backend)
    assert_equal(bg[0], np.array([-0.25, 0.0]), backend=backend)
    assert_equal(wg[1], np.array([[-0.25], [1.0]]), backend=backend)
    assert_equal(bg[1], np.array([-0.5]), backend=backend)
    xpnet.SGD(lr=0.5).step(model.params, model.grads)
    assert_equal(model.weights[0], np.array([[0.5, -0.75], [0.4375, 0.375]]), backend=backend)
    assert_equal(model.biases[0], np.array([0.125, -0.5]), backend=backend)
    assert_equal(model.weights[1], np.array([[0.625], [1.5]]), backend=backend)
    assert_equal(model.biases[1], np.array([-0.25]), backend=backend)
    assert_equal(model.logits(X), np.array([[0.6875]]), backend=backend)


def test_hand_worked_sgd_step_identity_mse(backend: Backend) -> None:
    """[2, 2, 1], identity hidden and output, MSE, SGD lr = 0.25, two samples (batch mean).

    X = [[1, 0], [0, 2]], y = [1, -1]. W0 = [[1, 0.5], [-0.5, 1]], b0 = [0, 0.25], W1 = [[0.5], [1]], b1 = [0.25].
    Forward: H = X W0 + b0 = [[1, 0.75], [-1, 2.25]]; z = H W1 + b1 = [0.5 + 0.75 + 0.25, -0.5 + 2.25 + 0.25]
             = [1.5, 2]; residual r = z - y = [0.5, 3]; loss = (0.25 + 9)/2 = 4.625.
    Backward: dz = 2r/2 = [0.5, 3]; dW1 = Hᵀ dz = [[0.5 - 3], [0.375 + 6.75]] = [[-2.5], [7.125]]; db1 = [3.5].
              dH = dz W1ᵀ = [[0.25, 0.5], [1.5, 3]]; dW0 = Xᵀ dH = [[0.25, 0.5], [3, 6]]; db0 = [1.75, 3.5].
    SGD (lr 0.25): W0 = [[1 - 0.0625, 0.5 - 0.125], [-0.5 - 0.75, 1 - 1.5]] = [[0.9375, 0.375], [-1.25, -0.5]];
                   b0 = [-0.4375, 0.25 - 0.875] = [-0.4375, -0.625];
                   W1 = [[0.5 + 0.625], [1 - 1.78125]] = [[1.125], [-0.78125]]; b1 = [0.25 - 0.875] = [-0.625].
    """
    model = xpnet.MLP([2, 2, 1], activation="identity", output="identity", backend=backend, dtype="float64")
    model.weights[0][...] = backend.asarray([[1.0, 0.5], [-0.5, 1.0]])
    model.biases[0][...] = backend.asarray([0.0, 0.25])
    model.weights[1][...] = backend.asarray([[0.5], [1.0]])
    model.biases[1][...] = backend.asarray([0.25])
    X, y = backend.asarray([[1.0, 0.0], [0.0, 2.0]]), backend.asarray([1.0, -1.0])
    value, wg, bg = model.loss_and_grads(X, y, loss="mse")
    assert_equal(value, np.float64(4.625), backend=backend)
    assert_equal(wg[1], np.array([[-2.5], [7.125]]), backend=backend)
    assert_equal(bg[1], np.array([3.5]), backend=backend)
    assert_equal(wg[0], np.array([[0.25, 0.5], [3.0, 6.0]]), backend=backend)
    assert_equal(bg[0], np.array([1.75, 3.5]), backend=backend)
    xpnet.SGD(lr=0.25).step(model.params, model.grads)
    assert_equal(model.weights[0], np.array([[0.9375, 0.375], [-1.25, -0.5]]), backend=backend)
    assert_equal(model.biases[0], np.array([-0.4375, -0.625]), backend=backend)
    assert_equal(model.weights[1], np.array([[1.125], [-0.78125]]), backend=backend)
    assert_equal(model.biases[1], np.array([-0.625]), backend=backend)
