"""Optimizers, clipping and schedules: torch.optim as an exact oracle (float64, every backend),
in-place updates through the model's views, documented schedule values, and one-line
ValueErrors for invalid hyperparameters."""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable

import array_api_compat
import numpy as np
import pytest

import xpnet
from backends import Backend
from tests.helpers import assert_close, assert_equal, to_numpy
from xpnet import optim

try:
    import torch
except ImportError:
    torch = None

N_STEPS = 20
N_PARAMS = 23

# id -> (xpnet factory, torch factory(params list)); non-default hyperparameters catch swapped arguments.
OPTIMIZERS: dict[str, tuple[Callable[[], optim.Optimizer], Callable[[list], Any]]] = {
    "sgd": (lambda: xpnet.SGD(lr=0.1),
            lambda p: torch.optim.SGD(p, lr=0.1, foreach=False)),
    "momentum": (lambda: xpnet.SGD(lr=0.05, momentum=0.9),
                 lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, foreach=False)),
    "nesterov": (lambda: xpnet.SGD(lr=0.05, momentum=0.8, nesterov=True),
                 lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True, foreach=False)),
    "adam": (lambda: xpnet.Adam(lr=0.02, beta1=0.8, beta2=0.95, eps=1e-6),
             lambda p: torch.optim.Adam(p, lr=0.02, betas=(0.8, 0.95), eps=1e-6, foreach=False)),
    "adam_defaults": (lambda: xpnet.Adam(),
                      lambda p: torch.optim.Adam(p, foreach=False)),
    "adamw": (lambda: xpnet.AdamW(lr=0.01, beta2=0.99, weight_decay=0.1),
              lambda p: torch.optim.AdamW(p, lr=0.01, betas=(0.9, 0.99), weight_decay=0.1, foreach=False)),
    "adamw_defaults": (lambda: xpnet.AdamW(),
                       lambda p: torch.optim.AdamW(p, foreach=False)),
    "rmsprop": (lambda: xpnet.RMSProp(lr=0.01, rho=0.9, eps=1e-6),
                lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-6, foreach=False)),
    "rmsprop_defaults": (lambda: xpnet.RMSProp(),
                         lambda p: torch.optim.RMSprop(p, foreach=False)),
}


def _gradient_sequence(seed: int = 0) -> list[np.ndarray]:
    """N_STEPS gradients with magnitudes over four decades and some exact zeros."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(N_STEPS):
        g = rng.normal(size=N_PARAMS) * 10.0 ** rng.uniform(-3, 1)
        g[rng.uniform(size=N_PARAMS) < 0.1] = 0.0
        out.append(g)
    out[3][:] = 0.0  # an all-zero step
    return out


def _lr_at(t: int) -> float:
    """A learning rate that changes every step (as a schedule would set it)."""
    return 0.03 * (1.0 + math.cos(0.3 * t)) + 1e-3


@pytest.mark.skipif(torch is None, reason="torch is not installed")
@pytest.mark.parametrize("vary_lr", [False, True], ids=["fixed_lr", "changing_lr"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_matches_torch_optim(name: str, vary_lr: bool, backend: Backend) -> None:
    make_ours, make_torch = OPTIMIZERS[name]
    p0 = np.random.default_rng(1).normal(size=N_PARAMS)
    ours = make_ours()
    params = backend.asarray(p0.copy(), dtype="float64")  # asarray may share memory with p0
    ref = torch.tensor(p0, dtype=torch.float64, requires_grad=True)
    topt = make_torch([ref])
    for t, g in enumerate(_gradient_sequence()):
        if vary_lr:
            ours.lr = _lr_at(t)
            for group in topt.param_groups:
                group["lr"] = _lr_at(t)
        ours.step(params, backend.asarray(g, dtype="float64"))
        ref.grad = torch.tensor(g, dtype=torch.float64)
        topt.step()
        assert ours.t == t + 1
        assert_close(params, ref.detach().numpy(), rtol=1e-12, atol=1e-12, backend=backend)
    assert not np.allclose(to_numpy(params), p0)  # it did move


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"])
def test_optimizer_updates_model_in_place(name: str, backend: Backend) -> None:
    model = xpnet.MLP([3, 4, 2], activation="tanh", backend=backend, dtype="float64", seed=3)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(6, 3)), rng.integers(0, 2, size=6)
    params = model.params
    weight_views, bias_views = list(model.weights), list(model.biases)
    dense_W = [layer.W for layer in model.layers if isinstance(layer, xpnet.nn.Dense)]
    before = np.array(to_numpy(params), copy=True)
    model.loss_and_grads(X, y)
    grads = np.array(to_numpy(model.grads), copy=True)
    assert np.any(grads != 0.0)
    opt = xpnet.make_optimizer(name, lr=0.1)
    opt.step(model.params, model.grads)
    assert model.params is params  # same buffer object...
    after = np.array(to_numpy(params), copy=True)
    assert not np.array_equal(after, before)  # ...that was changed in place
    if name == "sgd":
        assert_close(params, before - 0.1 * grads, rtol=1e-15, backend=backend)
    off = 0
    for w in weight_views:  # every old view (and every Dense layer's W) sees the new values
        assert_equal(w, after[off:off + w.shape[0] * w.shape[1]].reshape(tuple(w.shape)), backend=backend)
        off += w.shape[0] * w.shape[1]
    for b in bias_views:
        assert_equal(b, after[off:off + b.shape[0]], backend=backend)
        off += b.shape[0]
    for W, w in zip(dense_W, weight_views):
        assert_equal(W, to_numpy(w), backend=backend)


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"])
def test_float32_params_stay_float32(name: str, backend: Backend) -> None:
    opt = xpnet.make_optimizer(name, lr=0.01)
    params = backend.asarray(np.linspace(-1, 1, 9), dtype="float32")
    for _ in range(3):
        opt.step(params, backend.asarray(np.linspace(2, -1, 9), dtype="float32"))
    assert params.dtype == backend.dtype("float32")
    assert array_api_compat.device(params) == backend.device
    for buf in opt.state.values():
        assert buf.dtype == backend.dtype("float32")
        assert array_api_compat.array_namespace(buf) is backend.xp


# ============================================================== clipping
def test_clip_by_value(backend: Backend) -> None:
    g_host = np.array([-3.0, -0.5, 0.0, 0.25, 0.5, 2.0, -0.75])
    g = backend.asarray(g_host)
    out = xpnet.clip_by_value(g, 0.5)
    assert out is g  # in place
    assert_equal(g, np.clip(g_host, -0.5, 0.5), backend=backend)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_clip_by_norm_rescales_to_max_norm(backend: Backend, dtype: str) -> None:
    # g = [3, 4, 0, -12] has norm 13; clipped to 2.6 it is g·(2.6/13) = g·0.2.
    g = backend.asarray([3.0, 4.0, 0.0, -12.0], dtype=dtype)
    out = xpnet.clip_by_norm(g, 2.6)
    assert out is g
    rtol = 1e-15 if dtype == "float64" else 1e-6
    assert_close(g, np.array([0.6, 0.8, 0.0, -2.4], dtype=dtype), rtol=rtol, backend=backend)
    assert math.isclose(float(np.linalg.norm(to_numpy(g).astype(float))), 2.6, rel_tol=rtol)


@pytest.mark.parametrize("max_norm", [13.0, 100.0], ids=["equal", "below"])
def test_clip_by_norm_unchanged_at_or_below_max(backend: Backend, max_norm: float) -> None:
    g = backend.asarray([3.0, 4.0, 0.0, -12.0])
    xpnet.clip_by_norm(g, max_norm)
    assert_equal(g, np.array([3.0, 4.0, 0.0, -12.0]), backend=backend)


def test_clip_by_norm_of_zero_gradient_is_silent(backend: Backend) -> None:
    """A zero gradient (e.g. all-dead ReLUs) must pass through unchanged without warnings."""
    g = backend.asarray(np.zeros(5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise", under="ignore"):
            xpnet.clip_by_norm(g, 1.0)
    assert_equal(g, np.zeros(5), backend=backend)


# ============================================================== schedules
COS_PI_8 = 0.9238795325112867  # cos(π/8)
SQRT_HALF = 0.7071067811865476  # √½ = cos(π/4)

SCHEDULE_VALUES = [
    # lr(t) = lr
    ("constant", lambda: xpnet.Constant(0.1), {0: 0.1, 1: 0.1, 999: 0.1}),
    # lr · γ^⌊t/every⌋ with lr 0.8, every 3, γ 0.5
    ("step", lambda: xpnet.StepDecay(0.8, every=3, gamma=0.5),
     {0: 0.8, 2: 0.8, 3: 0.4, 5: 0.4, 6: 0.2, 9: 0.1}),
    # lr · γ^(t/every) with lr 1, γ 0.5, every 2
    ("exponential", lambda: xpnet.Exponential(1.0, gamma=0.5, every=2),
     {0: 1.0, 1: SQRT_HALF, 2: 0.5, 4: 0.25, 6: 0.125}),
    # lr_min + ½(lr - lr_min)(1 + cos(π min(t,T)/T)), lr 1, T 4, lr_min 0
    ("cosine", lambda: xpnet.Cosine(1.0, total=4),
     {0: 1.0, 1: 0.5 * (1 + SQRT_HALF), 2: 0.5, 3: 0.5 * (1 - SQRT_HALF), 4: 0.0, 10: 0.0}),
    # with lr_min 0.1: t=2 -> 0.1 + 0.45·1 = 0.55; t ≥ T -> 0.1
    ("cosine_lr_min", lambda: xpnet.Cosine(1.0, total=4, lr_min=0.1), {0: 1.0, 2: 0.55, 4: 0.1, 7: 0.1}),
    # after(t)·(t+1)/steps for t < steps, then after(t)
    ("warmup_constant", lambda: xpnet.Warmup(xpnet.Constant(1.0), steps=4),
     {0: 0.25, 1: 0.5, 2: 0.75, 3: 1.0, 4: 1.0, 50: 1.0}),
    # Warmup(Cosine(2, T=8), 4): t=1 -> (1 + cos(π/8))·2/4; t=4 -> cosine(4) = 1
    ("warmup_cosine", lambda: xpnet.Warmup(xpnet.Cosine(2.0, total=8), steps=4),
     {0: 0.5, 1: (1.0 + COS_PI_8) * 0.5, 4: 1.0, 8: 0.0}),
    ("warmup_zero_steps", lambda: xpnet.Warmup(xpnet.Constant(0.3), steps=0), {0: 0.3, 5: 0.3}),
    # make_schedule: step decays by 0.1 every total/3 = 3 steps
    ("make_step", lambda: xpnet.make_schedule("step", 1.0, total_steps=9),
     {0: 1.0, 2: 1.0, 3: 0.1, 6: 0.01, 8: 0.01}),
    ("make_step_kwargs", lambda: xpnet.make_schedule("step", 1.0, 100, every=10, gamma=0.5),
     {9: 1.0, 10: 0.5, 25: 0.25}),
    # make_schedule: exponential reaches 0.01·lr at total_steps (γ 0.01, every = total)
    ("make_exponential", lambda: xpnet.make_schedule("exponential", 0.5, total_steps=10),
     {0: 0.5, 5: 0.05, 10: 0.005}),
    ("make_cosine", lambda: xpnet.make_schedule("cosine", 1.0, total_steps=10), {0: 1.0, 5: 0.5, 10: 0.0}),
    ("make_constant", lambda: xpnet.make_schedule("Constant", 0.2, total_steps=10), {0: 0.2, 9: 0.2}),
    ("make_cosine_warmup", lambda: xpnet.make_schedule("cosine", 2.0, total_steps=8, warmup=4),
     {0: 0.5, 1: (1.0 + COS_PI_8) * 0.5, 4: 1.0, 8: 0.0}),
]


@pytest.mark.parametrize("name,make,values", SCHEDULE_VALUES, ids=[s[0] for s in SCHEDULE_VALUES])
def test_schedule_values(name: str, make: Callable[[], optim.Schedule], values: dict[int, float]) -> None:
    sched = make()
    for t, expected in values.items():
        assert sched(t) == pytest.approx(expected, rel=1e-13, abs=1e-15), f"{name} at t={t}"
        assert isinstance(sched(t), float)


def test_make_schedule_types() -> None:
    assert isinstance(xpnet.make_schedule("constant", 0.1, 10), xpnet.Constant)
    assert isinstance(xpnet.make_schedule("step", 0.1, 10), xpnet.StepDecay)
    assert isinstance(xpnet.make_schedule("exponential", 0.1, 10), xpnet.Exponential)
    assert isinstance(xpnet.make_schedule("cosine", 0.1, 10), xpnet.Cosine)
    warm = xpnet.make_schedule("cosine", 0.1, 10, warmup=3)
    assert isinstance(warm, xpnet.Warmup) and isinstance(warm.after, xpnet.Cosine) and warm.steps == 3


def test_make_optimizer() -> None:
    cases = {"sgd": (xpnet.SGD, {"momentum": 0.0, "nesterov": False}),
             "momentum": (xpnet.SGD, {"momentum": 0.9, "nesterov": False}),
             "nesterov": (xpnet.SGD, {"momentum": 0.9, "nesterov": True}),
             "adam": (xpnet.Adam, {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}),
             "adamw": (xpnet.AdamW, {"weight_decay": 1e-2}),
             "rmsprop": (xpnet.RMSProp, {"rho": 0.99, "eps": 1e-8})}
    for name, (cls, attrs) in cases.items():
        for spelled in (name, name.upper()):
            opt = xpnet.make_optimizer(spelled, lr=0.125)
            assert type(opt) is cls and opt.lr == 0.125 and opt.t == 0
            for k, v in attrs.items():
                assert getattr(opt, k) == v, f"{name}.{k}"
    assert xpnet.make_optimizer("momentum", 0.1, momentum=0.5).momentum == 0.5
    adam = xpnet.make_optimizer("adam", 0.1, beta1=0.5, eps=1e-6)
    assert (adam.beta1, adam.eps) == (0.5, 1e-6)
    assert xpnet.make_optimizer("adamw", 0.1, weight_decay=0.3).weight_decay == 0.3


# ============================================================== invalid hyperparameters
NAN, INF = float("nan"), float("inf")
INVALID = [
    ("sgd_negative_lr", lambda: xpnet.SGD(lr=-0.1), "lr"),
    ("sgd_nan_lr", lambda: xpnet.SGD(lr=NAN), "lr"),
    ("sgd_inf_lr", lambda: xpnet.SGD(lr=INF), "lr"),
    ("sgd_zero_lr", lambda: xpnet.SGD(lr=0.0), "lr"),
    ("sgd_text_lr", lambda: xpnet.SGD(lr="fast"), "lr"),
    ("sgd_negative_momentum", lambda: xpnet.SGD(lr=0.1, momentum=-0.1), "momentum"),
    ("sgd_momentum_above_1", lambda: xpnet.SGD(lr=0.1, momentum=1.5), "momentum"),
    ("nesterov_without_momentum", lambda: xpnet.SGD(lr=0.1, nesterov=True), "momentum"),
    ("adam_negative_lr", lambda: xpnet.Adam(lr=-1e-3), "lr"),
    ("adam_nan_lr", lambda: xpnet.Adam(lr=NAN), "lr"),
    ("adam_beta1_is_1", lambda: xpnet.Adam(beta1=1.0), "beta1"),
    ("adam_beta1_above_1", lambda: xpnet.Adam(beta1=1.5), "beta1"),
    ("adam_negative_beta1", lambda: xpnet.Adam(beta1=-0.1), "beta1"),
    ("adam_beta2_is_1", lambda: xpnet.Adam(beta2=1.0), "beta2"),
    ("adam_nan_beta2", lambda: xpnet.Adam(beta2=NAN), "beta2"),
    ("adam_zero_eps", lambda: xpnet.Adam(eps=0.0), "eps"),
    ("adamw_beta1_is_1", lambda: xpnet.AdamW(beta1=1.0), "beta1"),
    ("adamw_negative_weight_decay", lambda: xpnet.AdamW(weight_decay=-0.01), "weight_decay"),
    ("rmsprop_nan_lr", lambda: xpnet.RMSProp(lr=NAN), "lr"),
    ("rmsprop_negative_rho", lambda: xpnet.RMSProp(rho=-0.5), "rho"),
    ("rmsprop_negative_eps", lambda: xpnet.RMSProp(eps=-1e-8), "eps"),
    ("make_optimizer_unknown", lambda: xpnet.make_optimizer("adagrad", 0.1), "adagrad"),
    ("make_optimizer_negative_lr", lambda: xpnet.make_optimizer("adam", -0.1), "lr"),
    ("make_optimizer_nan_lr", lambda: xpnet.make_optimizer("momentum", NAN), "lr"),
    ("make_schedule_unknown", lambda: xpnet.make_schedule("linear", 0.1, 10), "linear"),
    ("constant_nan_lr", lambda: xpnet.Constant(NAN), "lr"),
    ("step_every_0", lambda: xpnet.StepDecay(0.1, every=0), "every"),
    ("exponential_negative_gamma", lambda: xpnet.Exponential(0.1, gamma=-0.5), "gamma"),
    ("cosine_total_0", lambda: xpnet.Cosine(0.1, total=0), "total"),
    ("warmup_negative_steps", lambda: xpnet.Warmup(xpnet.Constant(0.1), steps=-1), "steps"),
]


@pytest.mark.parametrize("make,needle", [(m, n) for _, m, n in INVALID], ids=[i for i, _, _ in INVALID])
def test_invalid_hyperparameters_raise_one_line_value_error(make: Callable[[], Any], needle: str) -> None:
    with pytest.raises(ValueError) as info:
        make()
    msg = str(info.value)
    assert msg.strip() and "\n" not in msg
    assert needle in msg


@pytest.mark.parametrize("bad", [0.0, -1.0, NAN], ids=["zero", "negative", "nan"])
def test_invalid_clip_thresholds(backend: Backend, bad: float) -> None:
    for clip in (xpnet.clip_by_value, xpnet.clip_by_norm):
        g = backend.asarray([1.0, -2.0])
        with pytest.raises(ValueError) as info:
            clip(g, bad)
        assert "\n" not in str(info.value) and "clip" in str(info.value)
        assert_equal(g, np.array([1.0, -2.0]), backend=backend)  # untouched
