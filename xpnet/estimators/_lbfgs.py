"""``solver="lbfgs"``: scikit-learn's full-batch L-BFGS fit, run as one step of xpnet's L-BFGS.

scikit-learn minimizes the objective of :mod:`._objective` over every sample with SciPy's L-BFGS-B:
at most ``max_iter`` iterations and ``max_fun`` loss evaluations, converged when max|gradient| ≤
``tol`` or the relative reduction of the loss falls below SciPy's default ftol. Here the training
loop takes one full-batch, unshuffled step of :class:`xpnet.optim.LBFGS` with those limits and
tolerances; ``n_iter_`` is its iteration count and ``loss_`` the final loss; a run that did not
converge warns with scikit-learn's ConvergenceWarning. Early stopping, ``batch_size``,
``shuffle`` and the learning-rate settings do not apply (as in scikit-learn); there is no
``loss_curve_``.

With ``dropout`` the whole minimization sees one set of masks (the step's). The single step moves
BatchNorm's running statistics once, from the starting parameters (the re-evaluations leave them
alone); afterwards they are set to the full batch's statistics at the final parameters (one
training forward with the step's dropout masks and momentum 1).

For regression with k > 1 outputs L-BFGS minimizes the loss whose gradient scikit-learn uses,
(1/2S) Σ_i w_i ‖z_i - y_i‖² + (alpha/2S) ΣW², and ``loss_`` reports scikit-learn's value, whose
data term is divided by k.
"""
from __future__ import annotations

import warnings
from typing import Any

from sklearn.exceptions import ConvergenceWarning

from .._xp import fetch
from ..nn import BatchNorm1d, walk
from ..optim import LBFGS
from ..optim.lbfgs import CONVERGED
from ..train.loop import Trainer, loss_scaler
from ._objective import SklearnLoss
from ._params import Params

__all__ = ["fit_lbfgs"]


def fit_lbfgs(est: Any, Xd: Any, Y: Any, params: Params, weighted: bool, kind: str) -> None:
    """Fit ``est.model_`` on (Xd, Y) (Y: targets, then the sample weights with ``weighted``) by L-BFGS;
    ``kind``: the objective's output kind (see :class:`SklearnLoss`)."""
    model = est.model_
    loss = SklearnLoss(model.xp, kind, model.n_outputs, weighted, params.alpha, mean_over_outputs=False)
    opt = LBFGS(max_iter=params.max_iter, max_eval=params.max_fun, gtol=params.tol)
    trainer = Trainer(model, opt, loss, batch_size=Xd.shape[0], seed=est._rng_seed,
                      l2=loss.l2 if params.alpha else 0.0, shuffle=False, track_accuracy=False,
                      scaler=loss_scaler(model.precision),  # float16: refused by the loop (L-BFGS re-evaluates)
                      distributed=est._data_parallel(weighted))
    counters = model.counters
    trainer.run(Xd, Y, 1)
    _batch_statistics_at_the_end(model, Xd, counters)
    est.n_iter_ = min(opt.n_iter, params.max_iter)
    est.loss_ = _reported_loss(opt.loss, model, Y, weighted, params.alpha, kind)
    if est.verbose:
        print(f"L-BFGS: {opt.n_iter} iterations, {opt.n_evals} loss evaluations, loss = {est.loss_:.8f}; "
              f"{opt.message}")
    if opt.status != CONVERGED:
        msg = f"lbfgs failed to converge after {est.n_iter_} iteration(s) (status={opt.status}):\n{opt.message}\n"
        if est.n_iter_ == params.max_iter:
            msg += f"\nIncrease the number of iterations to improve the convergence (max_iter={params.max_iter})."
        msg += "\nYou might also want to scale the data as shown in:\n    " \
               "https://scikit-learn.org/stable/modules/preprocessing.html"
        warnings.warn(msg, ConvergenceWarning, stacklevel=5)


def _batch_statistics_at_the_end(model: Any, Xd: Any, counters: list[int]) -> None:
    """BatchNorm running statistics := the full batch's at the final parameters (module docstring)."""
    norms = [layer for _, layer in walk(model.root) if isinstance(layer, BatchNorm1d)]
    if not norms:
        return
    momenta, after = [layer.momentum for layer in norms], model.counters
    try:
        for layer in norms:
            layer.momentum = 1.0
        model.counters = counters
        model.root.forward(Xd, True)
    finally:
        for layer, m in zip(norms, momenta):
            layer.momentum = m
        model.counters = after


def _reported_loss(value: float, model: Any, Y: Any, weighted: bool, alpha: float, kind: str) -> float:
    """scikit-learn's loss from the minimized one: for k > 1 regression outputs the data term is
    divided by k (the penalty P = alpha/(2S) ΣW² is not)."""
    k = model.n_outputs
    if kind != "identity" or k == 1:
        return value
    xp, w = model.xp, model._decay_params
    total = xp.sum(Y[:, k]) if weighted else xp.asarray(float(Y.shape[0]), device=model.backend.device)
    sq, s = fetch(xp, [xp.vecdot(w, w), xp.astype(total, w.dtype)], xp.float64)
    penalty = 0.5 * alpha * sq[0] / s[0] if alpha else 0.0
    return penalty + (value - penalty) / k
