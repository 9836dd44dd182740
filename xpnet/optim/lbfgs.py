"""L-BFGS with a strong-Wolfe line search, written once against ``xp``.

Direction: d = -H g, H the limited-memory BFGS approximation of the inverse Hessian built from
the last ``history_size`` pairs s = x⁺ - x, y = g⁺ - g (ρ = 1/yᵀs) by the two-loop recursion
(Nocedal & Wright, *Numerical Optimization*, Algorithm 7.4), from H₀ = γI, γ = sᵀy / yᵀy of the
newest pair. Step: t > 0 with the strong Wolfe conditions

    f(x + t d) ≤ f(x) + c₁ t gᵀd,    |g(x + t d)ᵀd| ≤ c₂ |gᵀd|    (c₁ = 1e-4, c₂ = 0.9),

found by extrapolating until the conditions hold or an interval must contain such a step, then
zooming into it with safeguarded cubic interpolation (ibid., Algorithms 3.5 and 3.6); a NaN/inf
loss counts as "too far". The first trial step is ``lr`` (lr·min(1, 1/‖g‖₂) without memory). Where
no strong-Wolfe step exists (at a ReLU kink the slope jumps over the window) the zoom stops once its
interval is narrower than 10% of the step (SciPy's xtol) and takes the lowest point that meets the
first condition. A pair with yᵀs ≤ ε·t·|gᵀd| (no positive curvature) is not stored; a search that
finds no decrease at all clears the memory and tries steepest descent once more (as L-BFGS-B does).

Everything of the parameters' size stays on the device (the two-loop coefficients are 0-d device
arrays); per loss evaluation three scalars reach the host in one transfer (f, gᵀd, max|g|), per
iteration one more (gᵀd of the new direction). Stopping rules, those of SciPy's L-BFGS-B as
scikit-learn runs it: max|g| ≤ ``gtol``; (f_k - f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) ≤ ``ftol``;
``max_iter`` iterations; ``max_eval`` loss evaluations (never exceeded: a line search stops at the
budget and keeps its best sufficient-decrease point); no decrease even along -g.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from .. import _validate as check
from .._xp import Array, fetch, namespace
from .optimizers import Optimizer

__all__ = ["LBFGS", "CONVERGED", "LIMIT", "FAILED"]

CONVERGED, LIMIT, FAILED = 0, 1, 2  # ``status`` values, as SciPy's
_C1, _C2, _MAX_LS = 1e-4, 0.9, 25
_BRACKET_RTOL = 0.1  # a zoom stops when its interval is this narrow relative to the step (SciPy's xtol)
_EPS = 2.220446049250313e-16


@dataclass
class _Point:
    """A trial step t: loss f, slope gᵀd, max|g| and the gradient g (a device copy; None at t = 0)."""

    t: float
    f: float
    gtd: float
    gmax: float
    g: Array = None


class LBFGS(Optimizer):
    """Limited-memory BFGS (see the module docstring), a full-batch method: train with
    ``xpnet.fit(model, X, y, optimizer=xpnet.LBFGS(max_iter=100), batch_size=len(X), epochs=1)``
    (with mini-batches each step minimizes its own batch's loss).

    Optimizers with ``needs_closure`` are called ``step(params, grads, closure, loss)``: ``loss``
    (a 0-d device array) and ``grads`` are those at ``params``; ``closure()`` evaluates the same
    objective at the current ``params``, returning the loss and writing the gradient into ``grads``.
    One step runs up to ``max_iter`` iterations; the memory carries over to the next step (as in
    ``torch.optim.LBFGS``; checkpoints keep the hyperparameters, not the memory). Afterwards
    ``params`` and ``grads`` hold the best point found and its gradient, and ``loss`` (host float),
    ``n_iter``, ``n_evals`` (of this step), ``status`` (``CONVERGED``, ``LIMIT`` or ``FAILED``) and
    ``message`` say how it ended.

    Args:
        lr: the trial step along d (1 is the quasi-Newton step).
        max_iter, max_eval: iterations and loss evaluations per step (max_eval default: 1.25·max_iter).
        gtol, ftol: the convergence tolerances (defaults: 1e-7, and SciPy's 1e7·machine epsilon).
        history_size: pairs (s, y) kept.
    """

    needs_closure = True

    def __init__(self, lr: float = 1.0, max_iter: int = 20, max_eval: int | None = None, gtol: float = 1e-7,
                 ftol: float = 1e7 * _EPS, history_size: int = 10):
        super().__init__(lr)
        self.max_iter = check.integer("max_iter", max_iter, low=1)
        self.max_eval = (max_iter * 5 + 3) // 4 if max_eval is None else check.integer("max_eval", max_eval, low=1)
        self.gtol = check.real("gtol", gtol, 0.0)
        self.ftol = check.real("ftol", ftol, 0.0)
        self.history_size = check.integer("history_size", history_size, low=1)
        self._s: list[Array] = []
        self._y: list[Array] = []
        self._rho: list[float] = []
        self._gamma: Array = None
        self.loss, self.n_iter, self.n_evals, self.status, self.message = math.nan, 0, 0, LIMIT, "not run"

    def config(self) -> dict:
        keys = ("lr", "max_iter", "max_eval", "gtol", "ftol", "history_size")
        return {k: getattr(self, k) for k in keys} | {"name": "LBFGS"}

    def state_names(self) -> tuple[str, ...]:
        return ()  # the memory is not part of ``state`` (nor of checkpoints)

    # ------------------------------------------------------------------ the iterations
    def step(self, params: Array, grads: Array, closure: Callable[[], Array], loss: Array) -> None:
        """Minimize from ``params`` (see the class docstring)."""
        if self.xp is None:
            self.xp = namespace(params)
        xp = self.xp
        self.t += 1
        g = grads * 1.0
        f, gmax = (v[0] for v in fetch(xp, [loss, xp.max(xp.abs(g))], xp.float64))
        self.loss, self.n_iter, self.n_evals = f, 0, 1
        if not (math.isfinite(f) and math.isfinite(gmax)):
            return self._end(FAILED, "the loss or its gradient is not finite at the starting point")
        if gmax <= self.gtol:
            return self._end(CONVERGED, "converged: max|gradient| <= gtol")
        while True:
            d = self._direction(g)
            gtd = fetch(xp, [xp.vecdot(g, d)], xp.float64)[0][0]
            if not gtd < 0.0:  # rounding spoiled the memory: start again from steepest descent
                self._forget()
                d = -g
                gtd = fetch(xp, [xp.vecdot(g, d)], xp.float64)[0][0]
            t = self.lr * min(1.0, 1.0 / math.sqrt(-gtd)) if not self._s else self.lr
            x0 = params * 1.0

            def phi(t: float) -> _Point:  # the objective along d, one transfer per evaluation
                params[...] = x0 + t * d
                value = closure()
                gt = grads * 1.0
                fv, slope, top = (v[0] for v in fetch(xp, [value, xp.vecdot(gt, d), xp.max(xp.abs(gt))],
                                                      xp.float64))
                return _Point(t, fv, slope, top, gt)

            budget = min(_MAX_LS, self.max_eval - self.n_evals)
            best, evals = _line_search(phi, _Point(0.0, f, gtd, gmax), t, budget)
            self.n_evals += evals
            if best.t == 0.0:  # no decrease along d
                params[...] = x0
                grads[...] = g
                if evals >= budget and budget < _MAX_LS:
                    return self._end(LIMIT, f"stopped: {self.max_eval} loss evaluations (max_eval) reached")
                if self._s:  # as L-BFGS-B: drop the memory and try steepest descent before giving up
                    self._forget()
                    continue
                return self._end(FAILED, "stopped: the line search found no step that decreases the loss")
            params[...] = x0 + best.t * d
            self._remember(best.t * d, best.g - g, best.t * (best.gtd - gtd), best.t * -gtd)
            self.n_iter += 1
            f_old, f, g, gmax = f, best.f, best.g, best.gmax
            self.loss = f
            grads[...] = g
            if gmax <= self.gtol:
                return self._end(CONVERGED, "converged: max|gradient| <= gtol")
            if f_old - f <= self.ftol * max(abs(f_old), abs(f), 1.0):
                return self._end(CONVERGED, "converged: relative reduction of the loss <= ftol")
            if self.n_evals >= self.max_eval:
                return self._end(LIMIT, f"stopped: {self.max_eval} loss evaluations (max_eval) reached")
            if self.n_iter >= self.max_iter:
                return self._end(LIMIT, f"stopped: {self.max_iter} iterations (max_iter) reached")

    def _end(self, status: int, message: str) -> None:
        self.status, self.message = status, message

    # ------------------------------------------------------------------ the memory
    def _direction(self, g: Array) -> Array:
        """d = -H g by the two-loop recursion (module docstring), on the device."""
        q = -g
        if not self._s:
            return q
        xp, pairs = self.xp, list(zip(self._s, self._y, self._rho))
        alphas = []
        for s, y, rho in reversed(pairs):
            a = xp.vecdot(s, q) * rho
            q -= a * y
            alphas.append(a)
        q *= self._gamma
        for (s, y, rho), a in zip(pairs, reversed(alphas)):
            q += (a - xp.vecdot(y, q) * rho) * s
        return q

    def _remember(self, s: Array, y: Array, ys: float, scale: float) -> None:
        """Store the pair (s, y) if its curvature yᵀs = ``ys`` exceeds ε·``scale``; γ ← yᵀs / yᵀy."""
        if not ys > _EPS * scale:
            return
        if len(self._s) == self.history_size:
            del self._s[0], self._y[0], self._rho[0]
        self._s.append(s)
        self._y.append(y)
        self._rho.append(1.0 / ys)
        self._gamma = ys / self.xp.vecdot(y, y)

    def _forget(self) -> None:
        self._s, self._y, self._rho, self._gamma = [], [], [], None


# ---------------------------------------------------------------------- the line search
def _line_search(phi: Callable[[float], _Point], start: _Point, t: float, budget: int) -> tuple[_Point, int]:
    """A step along d meeting the strong Wolfe conditions, from ``start`` (t = 0) with first trial ``t``.

    Returns (the accepted point, evaluations used). Where no Wolfe point turns up within ``budget``
    evaluations, or the bracket shrinks to nothing (a kink of ReLU, where the slope jumps over the
    curvature window), the lowest point seen that meets sufficient decrease (``start`` if none)."""
    prev, evals = start, 0
    while evals < budget:
        cur = phi(t)
        evals += 1
        if _decrease_fails(cur, start) or (prev is not start and cur.f >= prev.f):
            return _zoom(phi, start, prev, cur, budget - evals, evals)
        if abs(cur.gtd) <= -_C2 * start.gtd:
            return cur, evals
        if cur.gtd >= 0.0:  # past a minimum along d
            return _zoom(phi, start, cur, prev, budget - evals, evals)
        t = _cubic_minimizer(prev, cur, t + 0.01 * (t - prev.t), 10.0 * t)  # extrapolate
        prev = cur
    return prev, evals


def _zoom(phi: Callable[[float], _Point], start: _Point, lo: _Point, hi: _Point, budget: int,
          used: int) -> tuple[_Point, int]:
    """Shrink the interval between ``lo`` (meets sufficient decrease, lowest loss so far) and ``hi``,
    which holds a strong-Wolfe step, by safeguarded cubic interpolation (bisection next to a NaN)."""
    for _ in range(budget):
        a, b = min(lo.t, hi.t), max(lo.t, hi.t)
        width = b - a
        if width <= _BRACKET_RTOL * b:  # nothing left to gain in between
            break
        if math.isfinite(hi.f) and math.isfinite(hi.gtd):
            t = _cubic_minimizer(lo, hi, a + 0.1 * width, b - 0.1 * width)
        else:
            t = 0.5 * (a + b)
        cur = phi(t)
        used += 1
        if _decrease_fails(cur, start) or cur.f >= lo.f:
            hi = cur
            continue
        if abs(cur.gtd) <= -_C2 * start.gtd:
            return cur, used
        if cur.gtd * (hi.t - lo.t) >= 0.0:
            hi = lo
        lo = cur
    return lo, used


def _decrease_fails(p: _Point, start: _Point) -> bool:
    """The sufficient-decrease (Armijo) condition fails at p, or p's loss is not finite."""
    return not math.isfinite(p.f) or p.f > start.f + _C1 * p.t * start.gtd


def _cubic_minimizer(p: _Point, q: _Point, low: float, high: float) -> float:
    """The minimizer of the cubic through (p.t, p.f) and (q.t, q.f) with slopes p.gtd, q.gtd, clipped to
    [low, high] (ibid., eq. 3.59); the middle of [low, high] when the cubic has no minimizer:

        d₁ = p' + q' - 3 (p_f - q_f) / (p_t - q_t),  d₂ = sign(q_t - p_t) √(d₁² - p' q'),
        t = q_t - (q_t - p_t) (q' + d₂ - d₁) / (q' - p' + 2 d₂)."""
    low, high = min(low, high), max(low, high)
    try:
        d1 = p.gtd + q.gtd - 3.0 * (p.f - q.f) / (p.t - q.t)
        root = d1 * d1 - p.gtd * q.gtd
        if root < 0.0:
            return 0.5 * (low + high)
        d2 = math.copysign(math.sqrt(root), q.t - p.t)
        t = q.t - (q.t - p.t) * (q.gtd + d2 - d1) / (q.gtd - p.gtd + 2.0 * d2)
    except (ZeroDivisionError, OverflowError, ValueError):
        return 0.5 * (low + high)
    return min(max(t, low), high) if math.isfinite(t) else 0.5 * (low + high)
