"""xpnet.LBFGS: the line search, the closure the training loop gives it, oracles (least squares,
SciPy's L-BFGS-B on the same network loss), limits, backend parity and its host transfers."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.optimize

import xpnet
from tests.helpers import assert_close, to_numpy
from tests.test_transfers import BACKEND as STRICT_DEVICE1
from tests.test_transfers import transfers  # noqa: F401 - the transfer-counting fixture
from xpnet.nn import BatchNorm1d, Dense, Dropout
from xpnet.optim import lbfgs
from xpnet.train.loop import Trainer




pytestmark = pytest.mark.usefixtures("one_blas_thread")

def _data(n=60, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, (X[:, 0] + 0.5 * X[:, 1] ** 2 > 0.3).astype(np.int64)


# --------------------------------------------------------------------------- the line search
def _phi(f, df):
    return lambda t: lbfgs._Point(t, f(t), df(t), abs(df(t)), None)


@pytest.mark.parametrize("t0", [1e-3, 1.0, 40.0])
def test_line_search_meets_the_strong_wolfe_conditions(t0):
    f = lambda t: (t - 2.0) ** 4 - 3.0 * t  # noqa: E731 - minimum near t = 2.9; slope -35 at 0
    df = lambda t: 4.0 * (t - 2.0) ** 3 - 3.0  # noqa: E731
    start = lbfgs._Point(0.0, f(0.0), df(0.0), abs(df(0.0)))
    p, evals = lbfgs._line_search(_phi(f, df), start, t0, 25)
    assert p.f <= start.f + lbfgs._C1 * p.t * start.gtd
    assert abs(p.gtd) <= lbfgs._C2 * abs(start.gtd)
    assert 1 <= evals <= 25


def test_line_search_backs_off_from_nan_and_keeps_its_budget():
    f = lambda t: (t - 1.0) ** 2 if t < 1.5 else math.nan  # noqa: E731
    df = lambda t: 2.0 * (t - 1.0) if t < 1.5 else math.nan  # noqa: E731
    start = lbfgs._Point(0.0, 1.0, -2.0, 2.0)
    p, evals = lbfgs._line_search(_phi(f, df), start, 100.0, 25)
    assert 0.0 < p.t < 1.5 and p.f < 1.0 and evals <= 25
    p, evals = lbfgs._line_search(_phi(f, df), start, 100.0, 2)  # no acceptable step within 2
    assert evals == 2 and p.t == 0.0


def test_line_search_stops_at_a_kink():
    """|t - 1| has no point meeting the curvature condition; the search settles next to the kink."""
    start = lbfgs._Point(0.0, 1.0, -1.0, 1.0)
    p, evals = lbfgs._line_search(_phi(lambda t: abs(t - 1.0), lambda t: math.copysign(1.0, t - 1.0)),
                                  start, 3.0, 25)
    assert p.f < 0.2 and evals < 25


def test_cubic_minimizer_is_exact_on_a_cubic():
    c = lambda t: t ** 3 - 3.0 * t  # noqa: E731 - local minimum at t = 1
    dc = lambda t: 3.0 * t ** 2 - 3.0  # noqa: E731
    p, q = (lbfgs._Point(t, c(t), dc(t), 0.0) for t in (0.2, 2.0))
    assert lbfgs._cubic_minimizer(p, q, 0.0, 5.0) == pytest.approx(1.0, rel=1e-12)
    assert lbfgs._cubic_minimizer(p, q, 1.5, 5.0) == 1.5  # clipped to the bounds


# --------------------------------------------------------------------------- oracles
def test_lbfgs_solves_least_squares(backend):
    """A single Dense layer with identity output: mean squared error is a convex quadratic, so L-BFGS
    must reach the least-squares solution."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 4))
    y = X @ np.array([1.5, -2.0, 0.5, 3.0]) + 0.7 + 0.1 * rng.normal(size=50)
    model = xpnet.MLP([4, 1], output="identity", backend=backend, dtype="float64")
    opt = xpnet.LBFGS(max_iter=100, gtol=1e-9, ftol=0.0)  # the gradient's rounding floor here: ~6e-10
    xpnet.fit(model, X, y, optimizer=opt, epochs=1, batch_size=50, shuffle=False)
    coef, *_ = np.linalg.lstsq(np.c_[X, np.ones(50)], y, rcond=None)
    assert opt.status == lbfgs.CONVERGED and opt.n_iter < 30
    assert_close(model.weights[0][:, 0], coef[:4], rtol=1e-8, backend=backend)
    assert_close(model.biases[0], coef[4:], rtol=1e-8, backend=backend)


def test_lbfgs_matches_scipy_on_a_network():
    """The same tanh network's L2-regularized loss minimized by SciPy's L-BFGS-B (from the same start,
    with loss_and_grads as the oracle) and by xpnet.LBFGS: the same minimum."""
    X, y = _data()
    model = xpnet.MLP([5, 6, 1], activation="tanh", seed=3, dtype="float64")
    start = model.copy_params()

    def loss_grad(theta):
        model.set_params(theta)
        value, _, _ = model.loss_and_grads(X, y, l2=0.05)
        return float(value), model.grads.copy()

    ref = scipy.optimize.minimize(loss_grad, start, jac=True, method="L-BFGS-B",
                                  options={"maxiter": 500, "gtol": 1e-9, "ftol": 1e-15})
    model.set_params(start)
    opt = xpnet.LBFGS(max_iter=500, max_eval=1000, gtol=1e-9, ftol=1e-15)
    xpnet.fit(model, X, y, optimizer=opt, l2=0.05, epochs=1, batch_size=len(y), shuffle=False)
    assert opt.loss == pytest.approx(ref.fun, rel=1e-9)
    ours = model.forward(X)
    model.set_params(ref.x)  # the same function (hidden units may come out in another order)
    np.testing.assert_allclose(ours, model.forward(X), atol=1e-6)


def test_lbfgs_same_on_every_backend(backend):
    X, y = _data()
    out = {}
    for be in ("numpy", backend):
        model = xpnet.MLP([5, 8, 1], activation="tanh", seed=0, backend=be, dtype="float64")
        opt = xpnet.LBFGS(max_iter=15)
        history = xpnet.fit(model, X, y, optimizer=opt, l2=1e-2, epochs=2, batch_size=len(y), shuffle=False)
        out[be] = (model.params, history.loss, opt.n_iter, opt.n_evals)
    assert_close(out[backend][0], to_numpy(out["numpy"][0]), rtol=1e-8, atol=1e-10, backend=backend)
    np.testing.assert_allclose(out[backend][1], out["numpy"][1], rtol=1e-10)
    assert out[backend][2:] == out["numpy"][2:]


# --------------------------------------------------------------------------- the closure
def _noisy_network(backend):
    return xpnet.Network([Dense(5, 8, "tanh"), BatchNorm1d(8), Dropout(0.3), Dense(8, 1)], seed=2,
                         backend=backend, dtype="float64")


def test_closure_reuses_the_batch_masks_and_leaves_state_alone(backend):
    """The closure evaluates the step's own function (same dropout masks: the same loss at the same
    parameters) and leaves dropout counters and BatchNorm statistics as the first evaluation left them."""
    X, y = _data()
    model = _noisy_network(backend)
    Xd, Yd = model.as_input(X), model.targets(y)
    objective = xpnet.nn.Objective(model)
    trainer = Trainer(model, xpnet.LBFGS(), objective, batch_size=60, seed=0)
    counters = model.counters
    first, _ = model.train_step(Xd, Yd, objective)
    grads, after = model.grads * 1.0, (model.counters, model.buffers * 1.0)
    closure = trainer._closure(Xd, Yd, counters)
    assert_close(closure(), to_numpy(first), rtol=0, backend=backend)
    assert_close(model.grads, to_numpy(grads), rtol=0, backend=backend)
    model.params[...] = model.params * 0.9  # elsewhere: another value, the state still untouched
    assert float(closure()) != float(first)
    assert model.counters == after[0] == [1]
    assert_close(model.buffers, to_numpy(after[1]), rtol=0, backend=backend)


def test_lbfgs_fit_with_dropout_and_batchnorm(backend):
    """One L-BFGS step per epoch through xpnet.fit: each step draws one set of masks and moves the
    running statistics once, as any other optimizer's step does, and the loss goes down."""
    X, y = _data()
    ref, model = _noisy_network(backend), _noisy_network(backend)
    xpnet.fit(ref, X, y, optimizer=xpnet.SGD(lr=1e-9), epochs=1, batch_size=60, shuffle=False)
    opt = xpnet.LBFGS(max_iter=10)
    history = xpnet.fit(model, X, y, optimizer=opt, epochs=1, batch_size=60, shuffle=False)
    assert model.counters == ref.counters == [1]
    assert_close(model.buffers, to_numpy(ref.buffers), rtol=1e-6, backend=backend)
    assert opt.loss < 0.8 * history.step_loss[0] and opt.n_iter == 10


# --------------------------------------------------------------------------- limits and status
def test_limits_are_kept(backend):
    X, y = _data()
    model = xpnet.MLP([5, 8, 1], seed=0, backend=backend, dtype="float64")
    calls = []
    original = Trainer._closure

    def counting(self, *args):
        closure = original(self, *args)
        return lambda: calls.append(1) or closure()

    for kw, status in [(dict(max_iter=3), lbfgs.LIMIT), (dict(max_iter=100, max_eval=7), lbfgs.LIMIT),
                       (dict(gtol=1e3), lbfgs.CONVERGED)]:
        calls.clear()
        opt = xpnet.LBFGS(**kw)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(Trainer, "_closure", counting)
            xpnet.fit(model, X, y, optimizer=opt, epochs=1, batch_size=60)
        assert opt.status == status, opt.message
        assert opt.n_evals == len(calls) + 1 <= opt.max_eval and opt.n_iter <= opt.max_iter
    assert opt.n_iter == 0 and "gtol" in opt.message


def test_config_rebuilds_the_optimizer_and_bad_arguments_are_refused():
    opt = xpnet.LBFGS(lr=0.5, max_iter=7, gtol=1e-5, history_size=4)
    assert xpnet.optim.LBFGS(**{k: v for k, v in opt.config().items() if k != "name"}).config() == opt.config()
    assert opt.max_eval == 9 and opt.needs_closure and not xpnet.Adam.needs_closure
    for kw in (dict(max_iter=0), dict(history_size=0), dict(gtol=-1.0), dict(lr=0.0)):
        with pytest.raises(ValueError):
            xpnet.LBFGS(**kw)


def test_checkpoint_and_resume(tmp_path):
    """A checkpoint keeps L-BFGS's hyperparameters (its memory starts afresh on resume)."""
    X, y = _data()
    model = xpnet.MLP([5, 4, 1], seed=0, dtype="float64")
    xpnet.fit(model, X, y, optimizer=xpnet.LBFGS(max_iter=5, gtol=1e-6), epochs=1, batch_size=60,
              checkpoint=tmp_path / "run.npz")
    resumed = xpnet.MLP([5, 4, 1], seed=0, dtype="float64")
    history = xpnet.fit(resumed, X, y, epochs=3, batch_size=60, resume=tmp_path / "run.npz")
    assert history.loss[2] < history.loss[1] < history.loss[0]
    assert xpnet.checkpoint.load(tmp_path / "run.npz").new_optimizer().config() == xpnet.LBFGS(
        max_iter=5, gtol=1e-6).config()


def test_nonfinite_start_fails_cleanly():
    X, y = _data()
    model = xpnet.MLP([5, 4, 1], seed=0, dtype="float64")
    model.params[0] = math.nan
    opt = xpnet.LBFGS()
    with warnings.catch_warnings(), pytest.raises(xpnet.TrainingStopped):  # fit's fail-fast guard still rules
        warnings.simplefilter("ignore", RuntimeWarning)
        xpnet.fit(model, X, y, optimizer=opt, epochs=1, batch_size=60)
    assert opt.status == lbfgs.FAILED and "not finite" in opt.message


# --------------------------------------------------------------------------- host transfers
def test_transfers_are_the_line_search_scalars(transfers):  # noqa: F811 - the imported fixture
    """Per loss evaluation one transfer (f, gᵀd, max|g| together), per iteration one (gᵀd of the new
    direction), one at the start: nothing of the parameters' size reaches the host."""
    X, y = _data()
    model = _noisy_network(STRICT_DEVICE1)
    counted = {}
    original = xpnet.LBFGS.step

    def step(self, *args):
        before = sum(transfers.values())
        original(self, *args)
        counted["step"] = sum(transfers.values()) - before

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(xpnet.LBFGS, "step", step)
        opt = xpnet.LBFGS(max_iter=8)
        xpnet.fit(model, X, y, optimizer=opt, epochs=1, batch_size=60)
    assert opt.n_iter == 8
    assert counted["step"] == 1 + opt.n_iter + (opt.n_evals - 1)
