"""Hooks of the training loop, and the callbacks xpnet itself runs on it.

A callback is any object with some of these methods (or a plain callable, taken as
``on_epoch_end``); the loop calls them in list order. ``epoch`` is the epoch's number, counted
from 1 as in ``History["epoch"]`` (``initial_epoch``: the epochs completed before this run):

- ``on_train_begin(info)``: info holds ``model``, ``optimizer``, ``history``, ``trainer``,
  ``n_train``, ``n_val``, ``epochs``, ``steps_per_epoch``, ``initial_epoch``;
- ``on_epoch_begin(epoch)``;
- ``device_values(epoch) -> {name: 0-d or 1-d device array}``: fetched with the epoch's one
  device-to-host transfer; the host values are in ``trainer.fetched[name]`` afterwards
  (``trainer.step_losses``: the epoch's step losses, still on the device: a list of 0-d arrays, or one
  1-D array when the steps were replayed from CUDA graphs; ``trainer.last_batch``);
- ``on_epoch_end(epoch, logs) -> stop?``: logs has the epoch's ``loss``, ``accuracy``,
  ``val_loss``, ``val_accuracy``, ``lr``, ``time`` (host floats);
- ``on_epoch_closed(epoch, final)``: after the stop decision (``final``: the last epoch of this run);
- ``on_interrupt(epoch, step_in_epoch, partial)``: a signal stopped the epoch mid-way;
- ``on_train_end(history)``.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .history import History

__all__ = ["Callback", "CallbackList", "as_callbacks", "EarlyStopping", "PrintProgress", "GradNorms", "HOOKS"]

HOOKS = ("on_train_begin", "on_epoch_begin", "device_values", "on_epoch_end", "on_epoch_closed", "on_interrupt",
         "on_train_end")


class Callback:
    """Base class with every hook doing nothing."""

    def on_train_begin(self, info: dict) -> None:
        pass

    def on_epoch_begin(self, epoch: int) -> None:
        pass

    def device_values(self, epoch: int) -> dict:
        return {}

    def on_epoch_end(self, epoch: int, logs: dict) -> bool | None:
        return None

    def on_epoch_closed(self, epoch: int, final: bool) -> None:
        pass

    def on_interrupt(self, epoch: int, step_in_epoch: int, partial: dict) -> None:
        pass

    def on_train_end(self, history: History) -> None:
        pass


class _EpochEndFunction(Callback):
    """A plain callable ``f(epoch, logs) -> stop?`` as a callback."""

    def __init__(self, fn: Any):
        self.fn = fn

    def on_epoch_end(self, epoch: int, logs: dict) -> bool | None:
        return self.fn(epoch, logs)


def as_callbacks(callbacks: Any) -> list:
    """``callbacks`` as a list (ValueError for one callback or anything else that is not a list of them)."""
    if isinstance(callbacks, (str, bytes, dict)) or not isinstance(callbacks, Iterable) \
            or any(callable(getattr(callbacks, h, None)) for h in HOOKS):
        raise ValueError(f"callbacks must be a list of callbacks (e.g. [cb]), got {callbacks!r:.60}")
    return list(callbacks)


class CallbackList:
    """Callbacks called in order; ``on_epoch_end`` returns True if any asks to stop."""

    def __init__(self, callbacks: Iterable[Any]):
        self.callbacks = []
        for cb in as_callbacks(callbacks):
            if isinstance(cb, type):
                raise ValueError(f"callback {cb.__name__} is a class: pass an instance ({cb.__name__}(...))")
            hooks = [h for h in HOOKS if getattr(cb, h, None) is not None]
            unusable = [h for h in hooks if not callable(getattr(cb, h))]
            if unusable:
                raise ValueError(f"callback {cb!r:.60} has {', '.join(unusable)} that cannot be called")
            if not hooks:
                if not callable(cb):
                    raise ValueError(f"callback {cb!r:.60} is neither callable nor has any of the hooks {HOOKS}")
                cb = _EpochEndFunction(cb)
            self.callbacks.append(cb)
        self._index()

    def _index(self) -> None:
        """Each hook's bound methods, in order (looked up once, not at every call)."""
        self._hooks = {h: [fn for cb in self.callbacks if (fn := getattr(cb, h, None)) is not None]
                       for h in HOOKS + ("state",)}

    def prepend(self, cb: Any) -> None:
        """Put ``cb`` before every other callback."""
        self.callbacks.insert(0, cb)
        self._index()

    def call(self, hook: str, *args: Any) -> list:
        return [fn(*args) for fn in self._hooks[hook]]

    def device_values(self, epoch: int) -> dict:
        out: dict = {}
        for values in self.call("device_values", epoch):
            out.update(values or {})
        return out

    def on_epoch_end(self, epoch: int, logs: dict) -> bool:
        return any(bool(v) for v in self.call("on_epoch_end", epoch, logs))

    def state(self) -> dict:
        """The loop state the callbacks keep (for checkpoints): merged ``state()`` dicts."""
        out: dict = {}
        for values in self.call("state"):
            out.update(values)
        return out


class EarlyStopping(Callback):
    """Track the best monitored loss (validation loss, else training loss); with ``active``, stop after
    ``patience`` epochs without an improvement of more than ``min_delta`` and, with ``restore_best``,
    put back the best parameters (and buffers: BatchNorm's running statistics) at the end. Records
    ``history["best_epoch"]`` and ``stopped_early``."""

    def __init__(self, active: bool, patience: int, min_delta: float, restore_best: bool):
        self.active, self.patience, self.min_delta, self.restore_best = active, patience, min_delta, restore_best
        self.best, self.waited, self.best_params, self.best_buffers = math.inf, 0, None, None

    def on_train_begin(self, info: dict) -> None:
        self.model, self.history = info["model"], info["history"]

    def on_epoch_end(self, epoch: int, logs: dict) -> bool:
        monitor = logs["val_loss"] if logs["val_loss"] is not None else logs["loss"]
        if monitor < self.best - self.min_delta:
            self.best, self.waited, self.history["best_epoch"] = monitor, 0, epoch
            if self.active and self.restore_best:
                self.best_params, self.best_buffers = self.model.copy_params(), self.model.buffers * 1.0
        else:
            self.waited += 1
        if self.active and self.waited >= self.patience:
            self.history["stopped_early"] = True
            return True
        return False

    def on_train_end(self, history: History) -> None:
        if self.active and self.restore_best and self.best_params is not None:
            self.model.set_params(self.best_params)
            if self.best_buffers is not None:
                self.model.buffers[...] = self.best_buffers

    def state(self) -> dict:
        return {"best": self.best, "waited": self.waited, "best_params": self.best_params,
                "best_buffers": self.best_buffers}

    def load_state(self, best: float, waited: int, best_params: Any, best_buffers: Any = None) -> None:
        self.best, self.waited, self.best_params, self.best_buffers = best, waited, best_params, best_buffers


class PrintProgress(Callback):
    """One line per epoch on stdout: ``epoch 3/10  loss 0.41  accuracy 0.83 ...``."""

    def on_train_begin(self, info: dict) -> None:
        self.epochs = info["epochs"]

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        shown = "  ".join(f"{k} {v:.4g}" for k, v in logs.items() if v is not None)
        print(f"epoch {epoch}/{self.epochs}  {shown}", flush=True)


class GradNorms(Callback):
    """``history["grad_norms"]``: the L2 norm of each Dense layer's dL/dW at the epoch's last step."""

    def on_train_begin(self, info: dict) -> None:
        self.model, self.history, self.trainer = info["model"], info["history"], info["trainer"]

    def device_values(self, epoch: int) -> dict:
        xp = self.model.xp
        norms = [xp.sqrt(xp.vecdot(xp.reshape(g, (-1,)), xp.reshape(g, (-1,)))) for g in self.model.weight_grads]
        return {"grad_norms": xp.stack(norms)}

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self.history["grad_norms"].append(self.trainer.fetched["grad_norms"])
