"""The non-finite guard: training stops at the first epoch whose numbers are no longer finite."""
from __future__ import annotations

import math
from typing import Any

from .._xp import fetch
from ..nn import walk
from .callbacks import Callback
from .history import TrainingStopped

__all__ = ["NonFiniteGuard", "nonfinite_report"]


class NonFiniteGuard(Callback):
    """At each epoch's end (with the epoch's one transfer): a NaN/inf in the step losses, parameters,
    gradients or optimizer state raises :class:`TrainingStopped` naming the step, the epoch and the
    arrays, after putting back the parameters copied at the epoch's start."""

    def on_train_begin(self, info: dict) -> None:
        self.model, self.optimizer, self.history = info["model"], info["optimizer"], info["history"]
        self.trainer = info["trainer"]

    def on_epoch_begin(self, epoch: int) -> None:
        self.snapshot = self.model.copy_params()  # the last finite parameters

    def device_values(self, epoch: int) -> dict:
        xp, m = self.model.xp, self.model
        return {"finite": xp.all(xp.isfinite(xp.concat([m.params, m.grads, *self.optimizer.state.values()])))}

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        step_loss = self.trainer.epoch_step_loss
        if self.trainer.fetched["finite"] and all(math.isfinite(v) for v in step_loss):
            return
        report = nonfinite_report(self.model, self.optimizer, step_loss, epoch, self.snapshot)
        if report is not None:
            raise TrainingStopped(report, self.history)


def nonfinite_report(model: Any, optimizer: Any, step_loss: list[float], epoch: int,
                     snapshot: Any) -> str | None:
    """None if the step losses, parameters, gradients and optimizer state are finite; else why training
    must stop (one line), naming the epoch (``epoch``: its number, from 1), the step (from 1) and the
    arrays by layer (paths of the layout). The parameters are restored to ``snapshot`` (their copy at
    the epoch's start) when that copy is finite."""
    xp = model.xp
    walked = dict(walk(model.root))
    named = [(e, e.attr, e.view(model.params, xp)) for e in model.layout.params]
    named += [(e, f"d{e.attr}", e.view(model.grads, xp)) for e in model.layout.params]
    named += [(e, f"{k}[{e.attr}]", e.view(state, xp)) for k, state in sorted(optimizer.state.items())
              for e in model.layout.params]
    flags = [xp.all(xp.isfinite(a)) for _, _, a in named] + [xp.all(xp.isfinite(snapshot))]
    ok = [v != 0.0 for v in fetch(xp, [xp.stack(flags)], xp.float64)[0]]  # one transfer
    losses_ok = all(math.isfinite(v) for v in step_loss)
    if losses_ok and all(ok[:-1]):
        return None
    if losses_ok:
        step = len(step_loss) - 1
        what = f"the parameters, gradients or optimizer state became non-finite in the update of step {step + 1}"
    else:
        step = next(i for i, v in enumerate(step_loss) if not math.isfinite(v))
        what = f"the training loss became {step_loss[step]} at step {step + 1}"
    msg = f"{what} of epoch {epoch} (global step {(epoch - 1) * len(step_loss) + step + 1})"
    bad: dict[str, list[str]] = {}
    for (e, what_, _), fine in zip(named, ok):
        if not fine:
            bad.setdefault(e.layer, []).append(what_)
    if bad:
        msg += "; non-finite values in " + "; ".join(f"layer {path} ({walked[path]!r}): {', '.join(names)}"
                                                     for path, names in bad.items())
    if ok[-1]:
        model.set_params(snapshot)
        msg += (f". The parameters were restored to their values at the start of epoch {epoch} (the last "
                f"finite ones; the optimizer state was not)")
    return msg + ". Lower the learning rate, standardize the inputs or clip gradients (clip_norm)"
