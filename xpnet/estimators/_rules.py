"""scikit-learn's per-epoch rules for MLPs, as a callback on xpnet's training loop.

After each epoch (scikit-learn's ``_fit_stochastic``): the epoch loss L = Σ_steps loss·rows / n
is appended to ``loss_curve_``. An epoch fails to improve when L > best_loss_ - tol, or, with early
stopping, when the validation score s < best_validation_score_ + tol (the parameters of the best
score are put back at the end). A NaN loss or score (a diverging run) compares false both ways, so
it resets the count and training goes on, as in scikit-learn. "invscaling":
lr = learning_rate_init / (t + 1)^power_t, t the samples seen. After more than n_iter_no_change
failing epochs in a row training stops, except for solver="sgd" with learning_rate="adaptive",
which divides lr by 5 (and stops once lr <= 1e-6). A ConvergenceWarning says that max_iter
epochs ran out. The step-loss sum and the validation score cross to the host with the loop's one
transfer per epoch.
"""
from __future__ import annotations

import warnings
from typing import Any

from sklearn.exceptions import ConvergenceWarning

from ..train.callbacks import Callback
from ._params import Params

__all__ = ["SklearnRules"]

_LOSS_SUM, _SCORE = "sklearn_loss_sum", "sklearn_validation_score"


class SklearnRules(Callback):
    """Keeps ``est``'s fitted attributes (``n_iter_``, ``t_``, ``loss_curve_``, ``best_loss_``,
    ``validation_scores_``, ...) as scikit-learn does. ``validation``: (X_val, Y_val, weighted) for
    early stopping; ``incremental``: one epoch of ``partial_fit`` (no ConvergenceWarning)."""

    def __init__(self, est: Any, params: Params, incremental: bool, validation: tuple | None):
        self.est, self.params, self.incremental, self.validation = est, params, incremental, validation
        self.best_params = None

    def on_train_begin(self, info: dict) -> None:
        self.trainer, self.model, self.optimizer = info["trainer"], info["model"], info["optimizer"]
        self.n, self.batch = info["n_train"], self.trainer.batch_size
        if self.validation is not None:
            self.best_params = self.model.copy_params()

    def on_epoch_begin(self, epoch: int) -> None:
        self.est._epochs_seen = epoch  # epochs begun (from 1): the shuffle of the next epoch is keyed by it

    def device_values(self, epoch: int) -> dict:
        xp = self.model.xp
        sums = [v * float(min(self.batch, self.n - i * self.batch)) for i, v in enumerate(self.trainer.step_losses)]
        out = {_LOSS_SUM: xp.sum(xp.stack(sums))}
        if self.validation is not None:
            out[_SCORE] = self.est._validation_score(*self.validation)
        return out

    def on_epoch_end(self, epoch: int, logs: dict) -> bool:
        est, p, fetched = self.est, self.params, self.trainer.fetched
        loss = fetched[_LOSS_SUM] / self.n
        est.n_iter_ += 1
        est.t_ += self.n
        est.loss_ = loss
        est.loss_curve_.append(loss)
        if est.verbose:
            print(f"Iteration {est.n_iter_}, loss = {loss:.8f}")
        if self.validation is not None:
            self._score(fetched[_SCORE], p.tol)
        else:
            est._no_improvement_count = est._no_improvement_count + 1 if loss > est.best_loss_ - p.tol else 0
            est.best_loss_ = min(est.best_loss_, loss)
        if est.solver == "sgd" and est.learning_rate == "invscaling":
            self.optimizer.lr = p.lr / (est.t_ + 1) ** p.power_t
        if est._no_improvement_count > p.n_iter_no_change:
            what = "Validation score" if self.validation is not None else "Training loss"
            if self._stop(f"{what} did not improve more than tol={p.tol:f} for {p.n_iter_no_change} "
                          f"consecutive epochs."):
                return True
            est._no_improvement_count = 0
        if not self.incremental and est.n_iter_ == p.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({p.max_iter}) reached and the "
                          "optimization hasn't converged yet.", ConvergenceWarning)
        return False

    def _score(self, score: float, tol: float) -> None:
        est = self.est
        est.validation_scores_.append(score)
        if est.verbose:
            print(f"Validation score: {score:f}")
        est._no_improvement_count = est._no_improvement_count + 1 if score < est.best_validation_score_ + tol else 0
        if score > est.best_validation_score_:
            est.best_validation_score_ = score
            self.best_params = self.model.copy_params()

    def _stop(self, msg: str) -> bool:
        """Stop, or (adaptive SGD) divide the learning rate by 5 and go on."""
        est, opt = self.est, self.optimizer
        if est.solver != "sgd" or est.learning_rate != "adaptive":
            if est.verbose:
                print(msg + " Stopping.")
            return True
        if opt.lr <= 1e-6:
            if est.verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        opt.lr /= 5.0
        if est.verbose:
            print(msg + f" Setting learning rate to {opt.lr:f}")
        return False

    def on_train_end(self, history: Any) -> None:
        if self.best_params is not None:
            self.model.set_params(self.best_params)
