"""The composable layers against finite differences, a NumPy reference and torch.

Gradients: every case of ``CASES`` (one table: layer factory, input width, training or eval mode,
kinks to keep away from) is checked with :func:`xpnet.check_layer` in float64 on every backend;
the report must cover dx and *every* parameter inside the layer (names from the layer's own
layout). BatchNorm1d is also checked by a direct central-difference computation written here
(:func:`direct_gradients`), so a bug in ``check_layer`` cannot hide one in BatchNorm1d, and both
checks are shown to catch a deliberately wrong backward.

BatchNorm1d forward values are compared with a NumPy reference (training and eval), its running
statistics after several training forwards with ``torch.nn.functional.batch_norm`` (training=True),
and a batch of one leaves the running statistics alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pytest

import xpnet
from backends import Backend
from tests.helpers import assert_close, assert_equal, to_numpy
from xpnet import nn

try:
    import torch
except ImportError:  # the torch comparison skips
    torch = None

KINK_MARGIN = 1e-2  # ReLU/LeakyReLU inputs (or a Dense's pre-activations) stay this far from 0
FD_EPS = 1e-6
FD_RTOL = 1e-6
ACTIVATIONS = ["identity", "relu", "leaky_relu", "sigmoid", "tanh", "gelu", "softmax"]


# ============================================================== the table
@dataclass(frozen=True)
class Case:
    """One gradient check: ``make()`` builds a fresh (unbound) layer taking ``n_in`` features.

    ``kink``: None; "input" (every input at least KINK_MARGIN from 0: a bare ReLU/LeakyReLU);
    "preact" (rows whose Dense pre-activation comes within KINK_MARGIN of 0 are dropped).
    ``training``: the mode of the forward (BatchNorm1d eval uses random running statistics).
    """

    id: str
    make: Callable[[], Any]
    n_in: int
    kink: str | None = None
    training: bool = True
    rows: int = 6


def _dense_case(act: str) -> Case:
    kink = "preact" if act in ("relu", "leaky_relu") else None
    return Case(f"dense-{act}", lambda: nn.Dense(5, 4, act), 5, kink)


def _nested() -> Any:
    """A Sequential inside a Residual inside a Sequential (with Dropout and BatchNorm inside)."""
    inner = nn.Sequential([nn.Dense(6, 6, "sigmoid"), nn.LeakyReLU(0.2)])  # sigmoid > 0: no kink
    body = nn.Sequential([nn.Dense(6, 6, "tanh"), nn.Dropout(0.25), nn.BatchNorm1d(6), inner])
    return nn.Sequential([nn.Dense(5, 6, "gelu"), nn.Residual(body), nn.Dense(6, 3)])


CASES = [
    *[Case(f"act-{name}", lambda name=name: nn.make_activation(name), 5,
           "input" if name in ("relu", "leaky_relu") else None) for name in ACTIVATIONS],
    Case("act-leaky_relu-alpha0.2", lambda: nn.LeakyReLU(0.2), 5, "input"),
    *[_dense_case(act) for act in ACTIVATIONS],
    Case("dropout", lambda: nn.Dropout(0.3), 7),
    Case("dropout-eval", lambda: nn.Dropout(0.3), 7, training=False),
    Case("batchnorm-train", lambda: nn.BatchNorm1d(5), 5),
    Case("batchnorm-eval", lambda: nn.BatchNorm1d(5), 5, training=False),
    Case("batchnorm-train-momentum0.3", lambda: nn.BatchNorm1d(4, eps=1e-3, momentum=0.3), 4),
    Case("residual-identity", lambda: nn.Residual([nn.Dense(5, 5, "tanh"), nn.Dense(5, 5)]), 5),
    Case("residual-projection", lambda: nn.Residual([nn.Dense(5, 7, "tanh"), nn.BatchNorm1d(7)]), 5),
    Case("residual-explicit-shortcut",
         lambda: nn.Residual(nn.Dense(5, 4, "sigmoid"), shortcut=[nn.Dense(5, 4), nn.Tanh()]), 5),
    Case("residual-eval", lambda: nn.Residual([nn.Dense(5, 5, "gelu"), nn.BatchNorm1d(5)]), 5, training=False),
    Case("nested-sequential-residual", _nested, 5),
]


def bound_case(case: Case, backend: Backend, seed: int = 0) -> tuple[Any, Any, np.ndarray]:
    """(layer, its Bound, host x): the layer bound to fresh float64 arrays holding random values
    (random biases, gammas and betas, running statistics), and an input that avoids the kinks."""
    rng = np.random.default_rng(seed)
    layer = case.make()
    bound = nn.standalone(layer, case.n_in, backend=backend, dtype="float64", seed=3)
    if bound.layout.n_params:
        bound.params[...] = backend.asarray(rng.normal(scale=0.7, size=bound.layout.n_params), dtype="float64")
    for e in bound.layout.buffers:  # running mean ~ N(0, 0.5), running variance in [0.5, 2]
        value = rng.normal(scale=0.5, size=e.size) if e.attr == "running_mean" else rng.uniform(0.5, 2.0, e.size)
        bound.buffers[e.offset:e.stop] = backend.asarray(value, dtype="float64")
    x = rng.normal(size=(case.rows * 3, case.n_in))
    if case.kink == "input":
        x = np.copysign(KINK_MARGIN + np.abs(x), x)
        assert np.min(np.abs(x)) >= KINK_MARGIN
    elif case.kink == "preact":
        z = x @ to_numpy(layer.W) + to_numpy(layer.b)
        x = x[np.min(np.abs(z), axis=1) >= KINK_MARGIN]
    x = x[:case.rows]
    assert x.shape[0] >= 3, "too few rows away from the kinks"
    return layer, bound, x


# ============================================================== check_layer, from the table
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_layer_gradients(case: Case, backend: Backend) -> None:
    layer, bound, x = bound_case(case, backend)
    params_before = to_numpy(bound.params).copy()
    report = xpnet.check_layer(layer, backend.asarray(x, dtype="float64"), training=case.training,
                               eps=FD_EPS, rtol=FD_RTOL)
    assert report.passed, str(report)
    # dx and every parameter inside the layer (nested ones included), by path, plus the direction
    expected = ["dx"] + [e.name for e in bound.layout.params] + ["directional derivative"]
    assert [r.name for r in report.rows] == expected, str(report)
    for row in report.rows:  # a check where both sides vanish proves nothing
        assert row.numeric_norm > 1e-6 and row.analytic_norm > 1e-6, f"{row.name} is vacuous:\n{report}"
    assert_equal(bound.params, params_before, backend=backend)  # the layer itself is left alone


def test_table_covers_the_issue_list() -> None:
    ids = {c.id for c in CASES}
    for name in ACTIVATIONS:
        assert f"act-{name}" in ids and f"dense-{name}" in ids
    for must in ("batchnorm-train", "batchnorm-eval", "residual-identity", "residual-projection",
                 "residual-explicit-shortcut", "nested-sequential-residual", "dropout"):
        assert must in ids
    # the projection shortcut is built automatically; the explicit one is kept
    auto = nn.Residual([nn.Dense(5, 7, "tanh")])
    nn.standalone(auto, 5)
    assert isinstance(auto.shortcut, nn.Dense) and (auto.shortcut.n_in, auto.shortcut.n_out) == (5, 7)
    ident = nn.Residual([nn.Dense(5, 5, "tanh")])
    assert nn.standalone(ident, 5).layout.n_params == 30 and ident.shortcut is None
    nested = _nested()
    names = [e.name for e in nn.standalone(nested, 5).layout.params]
    assert "1.body.3.0.W" in names and "1.body.2.gamma" in names


# ============================================================== BatchNorm1d: direct finite differences
def direct_gradients(layer: Any, bound: Any, backend: Backend, x: np.ndarray, r: np.ndarray, training: bool,
                     eps: float = FD_EPS) -> dict[str, np.ndarray]:
    """Central differences of L = Σ forward(x) ⊙ r with respect to x, gamma and beta, through the
    layer's own forward on the backend (host-side perturbations; the buffers are put back before
    each forward). Written independently of xpnet.gradcheck."""
    buffers0 = to_numpy(bound.buffers).copy()

    def loss(xh: np.ndarray) -> float:
        bound.buffers[...] = backend.asarray(buffers0, dtype="float64")
        y = layer.forward(backend.asarray(xh, dtype="float64"), training)[0]
        return float(np.sum(to_numpy(y) * r))

    out = {"dx": np.empty_like(x)}
    for idx in np.ndindex(*x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += eps
        down[idx] -= eps
        out["dx"][idx] = (loss(up) - loss(down)) / (up[idx] - down[idx])
    for e in bound.layout.params:
        flat0 = to_numpy(bound.params).copy()
        g = np.empty(e.size)
        for j in range(e.size):
            for sign in (1, -1):
                p = flat0.copy()
                p[e.offset + j] += sign * eps
                bound.params[...] = backend.asarray(p, dtype="float64")
                if sign == 1:
                    up = loss(x)
                else:
                    down = loss(x)
            g[j] = (up - down) / (2 * eps)
        bound.params[...] = backend.asarray(flat0, dtype="float64")
        out[e.attr] = g.reshape(e.shape)
    bound.buffers[...] = backend.asarray(buffers0, dtype="float64")
    return out


def analytic_gradients(layer: Any, backend: Backend, x: np.ndarray, r: np.ndarray, training: bool) -> dict:
    _, cache = layer.forward(backend.asarray(x, dtype="float64"), training)
    dx = layer.backward(backend.asarray(r, dtype="float64"), cache)
    return {"dx": to_numpy(dx).copy(), "gamma": to_numpy(layer.grad_gamma).copy(),
            "beta": to_numpy(layer.grad_beta).copy()}


def gradient_errors(analytic: dict, numeric: dict) -> dict[str, float]:
    """Normwise relative error per array."""
    return {k: float(np.linalg.norm(analytic[k] - numeric[k]) / max(np.linalg.norm(numeric[k]), 1e-300))
            for k in numeric}


class _BatchNormWithoutMeanTerm(nn.BatchNorm1d):
    """A plausible mistake: the training backward forgets that μ depends on x (drops dβ/B)."""

    def backward(self, dy: Any, cache: Any) -> Any:
        _, inv, training = cache
        dx = super().backward(dy, cache)
        if training:
            dx = dx + self.gamma * inv * (self.xp.sum(dy, axis=0) / dy.shape[0])
        return dx


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batchnorm_direct_finite_differences(backend: Backend, training: bool) -> None:
    layer, bound, x = bound_case(Case("bn", lambda: nn.BatchNorm1d(4), 4, training=training, rows=7), backend, 5)
    r = np.random.default_rng(6).normal(size=x.shape)
    numeric = direct_gradients(layer, bound, backend, x, r, training)
    analytic = analytic_gradients(layer, backend, x, r, training)
    errors = gradient_errors(analytic, numeric)
    assert max(errors.values()) < FD_RTOL, errors
    assert all(np.linalg.norm(v) > 1e-3 for v in numeric.values())


def test_batchnorm_checks_catch_a_wrong_backward(backend: Backend) -> None:
    """Both checks fail on a BatchNorm1d whose training backward is wrong."""
    case = Case("bad", lambda: _BatchNormWithoutMeanTerm(4), 4, rows=7)
    layer, bound, x = bound_case(case, backend, 5)
    r = np.random.default_rng(6).normal(size=x.shape) + 1.0  # a mean term that matters
    errors = gradient_errors(analytic_gradients(layer, backend, x, r, True),
                             direct_gradients(layer, bound, backend, x, r, True))
    assert errors["dx"] > 1e-2 and errors["gamma"] < FD_RTOL and errors["beta"] < FD_RTOL, errors
    unbound = _BatchNormWithoutMeanTerm(4)  # not registered: check_layer binds it itself
    report = xpnet.check_layer(unbound, backend.asarray(x, dtype="float64"), rtol=FD_RTOL)
    assert not report.passed and not report["dx"].passed and report["gamma"].passed, str(report)


# ============================================================== BatchNorm1d: forward values
def numpy_batchnorm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, rm: np.ndarray, rv: np.ndarray,
                    eps: float, momentum: float, training: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y, new running mean, new running variance) of torch's BatchNorm1d, in float64."""
    if training:
        mu, var = x.mean(axis=0), x.var(axis=0)
        b = x.shape[0]
        if b > 1:
            rm = (1 - momentum) * rm + momentum * mu
            rv = (1 - momentum) * rv + momentum * x.var(axis=0, ddof=1)
    else:
        mu, var = rm, rv
    return gamma * (x - mu) / np.sqrt(var + eps) + beta, rm, rv


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batchnorm_forward_matches_numpy(backend: Backend, dtype: str, training: bool) -> None:
    rng = np.random.default_rng(11)
    layer = nn.BatchNorm1d(6, eps=1e-4, momentum=0.2)
    nn.standalone(layer, 6, backend=backend, dtype=dtype)
    gamma, beta = rng.normal(size=6), rng.normal(size=6)
    rm, rv = rng.normal(size=6), rng.uniform(0.5, 2.0, 6)
    for arr, value in ((layer.gamma, gamma), (layer.beta, beta), (layer.running_mean, rm), (layer.running_var, rv)):
        arr[...] = backend.asarray(value, dtype=dtype)
    # host copies of what the device holds (float32 rounds them)
    gamma, beta, rm, rv = (to_numpy(a).astype(np.float64) for a in (layer.gamma, layer.beta,
                                                                      layer.running_mean, layer.running_var))
    x = (rng.normal(size=(9, 6)) * rng.uniform(0.5, 3.0, 6) + rng.normal(size=6) * 2).astype(dtype)
    y, _ = layer.forward(backend.asarray(x, dtype=dtype), training)
    y_ref, rm_ref, rv_ref = numpy_batchnorm(x.astype(np.float64), gamma, beta, rm, rv, 1e-4, 0.2, training)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=1e-5, atol=1e-5)
    assert_close(y, y_ref.astype(dtype), backend=backend, **tol)
    assert_close(layer.running_mean, rm_ref.astype(dtype), backend=backend, **tol)
    assert_close(layer.running_var, rv_ref.astype(dtype), backend=backend, **tol)
    if training:  # the statistics moved; normalized output has batch mean beta and std |gamma|
        assert not np.allclose(to_numpy(layer.running_mean), rm)
        y_h = to_numpy(y).astype(np.float64)
        np.testing.assert_allclose(y_h.mean(axis=0), beta, atol=1e-5)
        np.testing.assert_allclose(y_h.std(axis=0), np.abs(gamma) * np.sqrt(x.var(0) / (x.var(0) + 1e-4)),
                                   rtol=1e-4)
    else:
        assert_equal(layer.running_mean, rm.astype(dtype), backend=backend)


@pytest.mark.skipif(torch is None, reason="torch is not installed")
@pytest.mark.parametrize("momentum", [0.1, 0.25])
def test_batchnorm_running_stats_match_torch(backend: Backend, momentum: float) -> None:
    rng = np.random.default_rng(3)
    layer = nn.BatchNorm1d(5, momentum=momentum)
    nn.standalone(layer, 5, backend=backend, dtype="float64")
    gamma, beta = rng.normal(size=5), rng.normal(size=5)
    layer.gamma[...] = backend.asarray(gamma, dtype="float64")
    layer.beta[...] = backend.asarray(beta, dtype="float64")
    t_rm, t_rv = torch.zeros(5, dtype=torch.float64), torch.ones(5, dtype=torch.float64)
    for i, b in enumerate([8, 2, 13, 5, 1, 7]):  # includes a batch of one (torch refuses it: skipped there)
        x = rng.normal(size=(b, 5)) * (i + 1) + i
        y, _ = layer.forward(backend.asarray(x, dtype="float64"), True)
        if b > 1:
            t_y = torch.nn.functional.batch_norm(torch.from_numpy(x), t_rm, t_rv, torch.from_numpy(gamma),
                                                 torch.from_numpy(beta), training=True, momentum=momentum,
                                                 eps=1e-5)
            assert_close(y, t_y.numpy(), backend=backend, rtol=1e-12, atol=1e-12)
    assert_close(layer.running_mean, t_rm.numpy(), backend=backend, rtol=1e-13, atol=1e-14)
    assert_close(layer.running_var, t_rv.numpy(), backend=backend, rtol=1e-13, atol=1e-14)
    assert float(np.max(np.abs(t_rv.numpy() - 1.0))) > 1.0  # the statistics really moved
    # eval mode normalizes with those running statistics, like torch
    x = rng.normal(size=(4, 5))
    y, _ = layer.forward(backend.asarray(x, dtype="float64"), False)
    t_y = torch.nn.functional.batch_norm(torch.from_numpy(x), t_rm, t_rv, torch.from_numpy(gamma),
                                         torch.from_numpy(beta), training=False, eps=1e-5)
    assert_close(y, t_y.numpy(), backend=backend, rtol=1e-12, atol=1e-12)


def test_batchnorm_batch_of_one(backend: Backend, dtype: str) -> None:
    """A batch of one leaves the running statistics untouched (torch refuses it); x̂ = 0 so y = β
    and dx = 0."""
    rng = np.random.default_rng(4)
    layer = nn.BatchNorm1d(3)
    bound = nn.standalone(layer, 3, backend=backend, dtype=dtype)
    bound.params[...] = backend.asarray(rng.normal(size=6), dtype=dtype)
    bound.buffers[...] = backend.asarray(np.r_[rng.normal(size=3), rng.uniform(0.5, 2, 3)], dtype=dtype)
    before = to_numpy(bound.buffers).copy()
    x = backend.asarray(rng.normal(size=(1, 3)), dtype=dtype)
    y, cache = layer.forward(x, True)
    assert_equal(bound.buffers, before, backend=backend)
    assert_close(y, to_numpy(layer.beta).reshape(1, 3), backend=backend, atol=1e-6)
    dx = layer.backward(backend.asarray(rng.normal(size=(1, 3)), dtype=dtype), cache)
    assert_close(dx, np.zeros((1, 3), dtype=dtype), backend=backend, atol=1e-6)
    # a batch of two does move them
    layer.forward(backend.asarray(rng.normal(size=(2, 3)), dtype=dtype), True)
    assert not np.array_equal(to_numpy(bound.buffers), before)
