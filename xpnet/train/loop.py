"""The one training loop: shuffled mini-batches on the device, hooks around it.

Per step: gather the batch (its rows of the epoch's permutation) -> forward -> objective (loss
and d_logits) -> backward -> gradient transforms (clipping; an allreduce when distributed) ->
in-place optimizer update. The step's loss (and correct-prediction count) stay on the device.
At the epoch's end everything the host needs — step losses, hits, validation sums, the guard's
flag, whatever the callbacks ask for — crosses in **one** transfer; then the callbacks run.
On a GPU the same step is recorded into a CUDA graph and replayed, one launch a step
(:mod:`xpnet.train.graphed`); elsewhere, and for runs that need the host every step, it is
launched from Python (``_eager_steps``).

Sparse X (``backends.SparseRows``): each batch's rows are densified on the device; a batch of
every row stays sparse (not permuted: a full batch's loss does not depend on row order) and the
first layer, a Dense, multiplies it on the device. Optimizers with ``needs_closure`` (L-BFGS) also
get a closure that re-evaluates the same batch with the same dropout masks, leaving dropout
counters and buffers (BatchNorm running statistics) as the step's first evaluation left them.
"""
from __future__ import annotations

import contextlib
import math
import time
from typing import Any, Callable, Sequence

from .. import _validate as check
from .. import random as xrandom
from .._xp import fetch, is_sparse
from ..nn import Dense, Sequential
from ..optim import LossScaler
from .callbacks import CallbackList
from .checkpointing import EPOCH_START, partial_epoch
from .graphed import GraphedSteps, graphed_steps
from .history import History

__all__ = ["Trainer", "validation_sums", "loss_scaler", "scaled_closure_error"]

Array = Any
_EVAL_CHUNK = 8192


def validation_sums(model: Any, objective: Any, X: Array, Y: Array, l2: float = 0.0,
                    chunk: int = _EVAL_CHUNK) -> dict[str, Array]:
    """Device sums for the mean loss and accuracy of ``model`` on (X, Y), evaluated in chunks:
    ``loss_sum`` (Σ batch loss × rows), ``l2_sum`` (ΣW², with ``l2``), ``hits`` (for classifiers)."""
    xp, n = model.xp, X.shape[0]
    sums, hits = [], []
    for i in range(0, n, chunk):
        z = model.logits(X[i:min(i + chunk, n), ...])  # in-bounds stops: the array API leaves others open
        y = Y[i:min(i + chunk, n), ...]
        sums.append(objective.value(z, y) * float(z.shape[0]))
        h = objective.hits(z, y)
        if h is not None:
            hits.append(h)
    if n == 0:  # a data-parallel rank's empty share: zero sums (hits for a classifier)
        zero = xp.zeros((), dtype=model.dtype, device=model.backend.device)
        sums, hits = [zero], [] if objective.hits(model.logits(X), Y) is None else [zero]
    out = {"loss_sum": xp.sum(xp.stack(sums))}
    if l2:
        w = model._decay_params
        out["l2_sum"] = xp.vecdot(w, w)
    if hits:
        out["hits"] = xp.sum(xp.stack(hits))
    return out


def validation_result(values: dict, n: int, l2: float, denominator: int) -> tuple[float, float | None]:
    """(mean loss + λ/2 ΣW², accuracy or None) from the host values of :func:`validation_sums`."""
    total = values["loss_sum"] / n
    if "l2_sum" in values:
        total += values["l2_sum"] * 0.5 * l2
    return total, (values["hits"] / denominator if "hits" in values else None)


def loss_scaler(precision: Any) -> LossScaler | None:
    """The dynamic loss scaler a :class:`~xpnet.nn.precision.Precision` trains with (float16), else None."""
    if not precision.loss_scaling:
        return None
    return LossScaler(precision.init_scale, growth_interval=precision.growth_interval)


def scaled_closure_error(optimizer: str) -> ValueError:
    """Why ``optimizer``, which re-evaluates the loss (L-BFGS), cannot train under float16's loss scaling."""
    return ValueError(f"{optimizer} re-evaluates the loss and cannot train with loss scaling (precision='float16'): "
                      f"use float32 or float64 precision")


class Trainer:
    """Trains ``model`` with ``optimizer`` on ``objective`` (see the module docstring).

    ``l2``: λ of the L2 penalty (or ``l2(rows)`` per batch); ``schedule(t)``: the learning rate
    of step t; ``transforms``: functions applied in place to the flat gradient after backward;
    ``validation``: (X_val, Y_val) on the device, evaluated every epoch; ``signals``: an object
    whose ``signum`` (checked after every step) stops the epoch and calls ``on_interrupt``;
    ``on_step(loss)``: called with each step's loss (a device scalar), ends the run when it
    returns True (for procedures such as the learning-rate finder that look at every step);
    ``scaler``: a :class:`~xpnet.optim.LossScaler` for float16 training (its scale and skipped steps
    go into ``history["loss_scale"]`` and ``history["skipped_steps"]`` every epoch);
    ``distributed``: a :class:`~xpnet.train.distributed.DataParallel` (data-parallel training: each
    step trains this rank's rows of the batch and reduces gradient, loss and hits in one allreduce
    before L2, clipping and the update; validation is sharded; stop decisions are agreed). None:
    one process, and none of its hooks runs.
    """

    def __init__(self, model: Any, optimizer: Any, objective: Any, *, batch_size: int, seed: int,
                 l2: float | Callable[[int], Any] = 0.0, shuffle: bool = True, schedule: Any = None,
                 transforms: Sequence[Callable[[Array], Any]] = (), callbacks: Sequence[Any] = (),
                 track_accuracy: bool = True, validation: tuple[Array, Array] | None = None,
                 signals: Any = None, on_step: Callable[[Array], bool] | None = None, scaler: Any = None,
                 distributed: Any = None):
        self.model, self.optimizer, self.objective = model, optimizer, objective
        self.batch_size, self.seed, self.l2, self.shuffle = batch_size, seed, l2, shuffle
        self.schedule, self.transforms, self.validation, self.signals = schedule, list(transforms), validation, signals
        self.on_step, self.scaler = on_step, scaler
        self.track_accuracy = track_accuracy and model.output != "identity"
        self.callbacks = CallbackList(callbacks)
        self.distributed = distributed
        if distributed is not None:  # first: it checks that the ranks agree before anything else runs
            self.callbacks.prepend(distributed)
        self.fetched: dict[str, Any] = {}
        self.epoch_step_loss: list[float] = []

    def loop_state(self) -> dict:
        """The state the callbacks (early stopping) and the loss scaler keep, for checkpoints."""
        state = self.callbacks.state()
        if self.scaler is not None:
            state["loss_scaler"] = self.scaler.state()
        return state

    def _batches(self, X: Array, Y: Array, counter: int, first_step: int):
        xp, n, bs = self.model.xp, X.shape[0], self.batch_size
        sparse, dp = is_sparse(X), self.distributed
        if hasattr(X, "batches"):  # a streamed X (xpnet.train.stream): block by block from the host
            yield from X.batches(counter, first_step, None if dp is None else dp.part)
            return
        whole = sparse and bs >= n and dp is None  # one sparse batch of every row: kept sparse (module docstring)
        _mark_sparse_input(self.model, whole)
        # Each batch gathers its rows of the epoch's permutation: no shuffled copy of the dataset.
        perm = xrandom.permutation(xp, n, self.seed, xrandom.STREAMS["shuffle"], counter,
                                   self.model.backend.device) if self.shuffle and not whole else None
        for i in range(first_step * bs, n, bs):
            start, stop = i, min(i + bs, n)
            if dp is not None:  # this rank's rows of the batch
                lo, hi = dp.part(i, stop)
                start, stop = i + lo, i + hi
            if perm is None:
                yield i, X if whole else X[start:stop, ...], Y[start:stop, ...]
            else:
                rows = perm[start:stop]
                yield i, X.take(rows) if sparse else xp.take(X, rows, axis=0), xp.take(Y, rows, axis=0)

    def _closure(self, xb: Array, yb: Array, counters: list[int], start: int = 0) -> Callable[[], Array]:
        """The loss (and, into the model's gradients, its gradient with the transforms applied) at the
        current parameters on batch (xb, yb), drawing the dropout masks of dropout counters ``counters``
        (the step's first evaluation's) and leaving counters and buffers as they are."""
        model = self.model
        if self.scaler is not None:
            raise scaled_closure_error(type(self.optimizer).__name__)

        def closure() -> Array:
            with model.frozen_state(grads=False):
                model.counters = counters
                if self.distributed is None:
                    value, _ = model.train_step(xb, yb, self.objective, self.l2)
                else:
                    value, _ = self.distributed.step(xb, yb, start, None)
                for transform in self.transforms:
                    transform(model.grads)
            return value
        return closure

    def run(self, X: Array, Y: Array, epochs: int, **kwargs: Any) -> History:
        """Train (see :meth:`_run`); data-parallel: an error on one rank alone aborts the job."""
        if self.distributed is None:
            return self._run(X, Y, epochs, **kwargs)
        return self.distributed.guarded(self._run, X, Y, epochs, **kwargs)

    def _run(self, X: Array, Y: Array, epochs: int, *, first_epoch: int = 0, history: History | None = None,
             partial: dict | None = None, n_val: int = 0) -> History:
        """Train on device arrays (X, Y) after ``first_epoch`` epochs completed, up to ``epochs`` in all;
        returns the history.

        Epochs are numbered from 1 (history, callbacks, messages): epoch e shuffles with counter e - 1.
        ``partial``: the record of an epoch interrupted mid-way (its steps are skipped)."""
        model, opt, dp = self.model, self.optimizer, self.distributed
        history = History() if history is None else history
        n, bs = X.shape[0], self.batch_size
        steps = math.ceil(n / bs)
        cbs = self.callbacks
        graphed = graphed_steps(self, X, Y)  # None: eager launches (CPU backends; runs a graph cannot replay)
        cbs.call("on_train_begin", {"model": model, "optimizer": opt, "history": history, "trainer": self,
                                    "n_train": n, "n_val": n_val, "epochs": epochs, "steps_per_epoch": steps,
                                    "initial_epoch": first_epoch})
        for index in range(first_epoch, epochs):  # index: the epochs completed before, the shuffle counter
            epoch = index + 1
            t0 = time.perf_counter()
            self._skipped_before = 0 if self.scaler is None else self.scaler.skipped
            cbs.call("on_epoch_begin", epoch)
            done, partial = partial or EPOCH_START, None  # a resumed unfinished epoch: its first steps
            if graphed is None:
                ran = self._eager_steps(X, Y, index, done, t0)
            else:
                ran = self._graphed_steps(graphed, index, done, t0)
            if ran is None:  # on_step ended the run
                cbs.call("on_train_end", history)
                return history
            losses, hits = ran
            self.step_losses = losses  # with last_batch: for callbacks' device_values
            logs = self._end_epoch(epoch, history, done, losses, hits, t0, n, steps, Y)
            stop = cbs.on_epoch_end(epoch, logs)
            if dp is not None:
                stop = dp.agree(stop)  # any rank's stop (early stopping, a callback) stops every rank
            final = stop or epoch == epochs
            cbs.call("on_epoch_closed", epoch, final)
            if stop:
                break
        cbs.call("on_train_end", history)
        return history

    def _eager_steps(self, X: Array, Y: Array, index: int, done: dict, t0: float) -> tuple[list, list] | None:
        """Epoch ``index``'s steps from ``done["step_in_epoch"]``, launched from Python; returns the steps'
        device losses and hits, or None if ``on_step`` ended the run."""
        model, opt, objective, dp = self.model, self.optimizer, self.objective, self.distributed
        schedule, scaler, transforms, l2 = self.schedule, self.scaler, self.transforms, self.l2
        closure, track_accuracy, signals, on_step = opt.needs_closure, self.track_accuracy, self.signals, self.on_step
        n, bs = X.shape[0], self.batch_size
        losses, hits = [], []
        for i, xb, yb in self._batches(X, Y, index, done["step_in_epoch"]):
            if schedule is not None:  # a rate that is not a finite number >= 0 stops with a ValueError
                opt.lr = check.learning_rate(schedule, opt.t, schedule(opt.t))
            counters = model.counters if closure else None
            if dp is None:
                value, z = model.train_step(xb, yb, objective, l2, None if scaler is None else scaler.scale)
            else:  # this rank's rows; gradient | loss | hits in one allreduce; then L2
                value, hit = dp.step(xb, yb, i, None if scaler is None else scaler.scale)
            if scaler is None or scaler.update(model.grads):  # float16: a step with inf/NaN gradients is skipped
                for transform in transforms:
                    transform(model.grads)
                if closure:
                    opt.step(model.params, model.grads, self._closure(xb, yb, counters, i), value)
                else:
                    opt.step(model.params, model.grads)
            losses.append(value)
            if track_accuracy:
                hits.append(objective.hits(z, yb) if dp is None else hit)
            if signals is not None and signals.signum and i + bs < n:  # SIGINT/SIGTERM mid-epoch
                self._interrupt(index + 1, i // bs + 1, done, losses, hits, t0)
            if on_step is not None and on_step(value):
                return None
        self.last_batch = (xb, yb)
        return losses, hits

    def _graphed_steps(self, graphed: GraphedSteps, index: int, done: dict, t0: float) -> tuple[Array, Any]:
        """Epoch ``index``'s steps replayed from CUDA graphs (:mod:`xpnet.train.graphed`)."""
        signals, n, bs = self.signals, graphed.n, self.batch_size
        _mark_sparse_input(self.model, False)
        with contextlib.closing(graphed.epoch(index, done["step_in_epoch"])) as run:
            for i in run:
                if signals is not None and signals.signum and i + bs < n:  # SIGINT/SIGTERM mid-epoch
                    self._interrupt(index + 1, i // bs + 1, done, graphed.losses(), graphed.hit_counts(), t0)
        self.last_batch = graphed.last_batch
        return graphed.losses(), graphed.hit_counts()

    def _end_epoch(self, epoch: int, history: History, done: dict, losses: list | Array, hits: list | Array, t0: float,
                   n: int, steps: int, Y: Array) -> dict:
        """The epoch's one device-to-host transfer, and its record in the history."""
        xp, bs = self.model.xp, self.batch_size
        device = {"step_loss": _steps(xp, losses)}
        if self.track_accuracy:
            device["hits"] = xp.sum(_steps(xp, hits))
        dp = self.distributed
        if self.validation is not None:
            shard = self.validation if dp is None else dp.validation_share(*self.validation)
            val = validation_sums(self.model, self.objective, *shard, self._l2_value())
            device.update({f"val_{k}": v for k, v in val.items()})
        device.update(self.callbacks.device_values(epoch))
        names = list(device)
        host = fetch(xp, [device[k] for k in names], xp.float64)
        self.fetched = {k: (v if k in ("step_loss", "grad_norms") else v[0]) for k, v in zip(names, host)}
        if dp is not None:  # validation sums added over the ranks, parameter checksums compared, signals agreed
            dp.end_epoch(epoch, self.fetched)
        step_loss = done["step_loss"] + self.fetched["step_loss"]
        self.epoch_step_loss = step_loss
        last = n - (steps - 1) * bs
        epoch_loss = (sum(step_loss[:-1]) * bs + step_loss[-1] * last) / n
        history["epoch"].append(epoch)
        history["step_loss"].extend(step_loss)
        history["loss"].append(epoch_loss)
        accuracy = None
        if self.track_accuracy:
            accuracy = (done["hits"] + int(self.fetched["hits"])) / self.objective.hit_denominator(n, Y)
        history["accuracy"].append(accuracy)
        history["lr"].append(self.optimizer.lr)
        val_loss = val_acc = None
        if self.validation is not None:
            Xv, Yv = self.validation
            values = {k[4:]: v for k, v in self.fetched.items() if k.startswith("val_")}
            val_loss, val_acc = validation_result(values, Xv.shape[0], self._l2_value(),
                                                  self.objective.hit_denominator(Xv.shape[0], Yv))
        history["val_loss"].append(val_loss)
        history["val_accuracy"].append(val_acc)
        history["time"].append(done["time"] + time.perf_counter() - t0)
        if self.scaler is not None:
            history.setdefault("loss_scale", []).append(self.scaler.scale)
            history.setdefault("skipped_steps", []).append(self.scaler.skipped - self._skipped_before)
        return {k: history[k][-1] for k in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "time")}

    def _l2_value(self) -> float:
        return 0.0 if callable(self.l2) else self.l2

    def _interrupt(self, epoch: int, steps_done: int, done: dict, losses: list, hits: list, t0: float) -> None:
        xp = self.model.xp
        parts = [_steps(xp, losses)] + ([xp.sum(_steps(xp, hits))] if self.track_accuracy else [])
        host = fetch(xp, parts, xp.float64)
        partial = partial_epoch(done, host[0], int(host[1][0]) if self.track_accuracy else 0, t0)
        self.callbacks.call("on_interrupt", epoch, steps_done, partial)


def _steps(xp: Any, values: list | Array) -> Array:
    """The steps' device values (a list of 0-d arrays, or already one 1-D array) as one 1-D array."""
    return xp.stack(values) if isinstance(values, list) else values


def _mark_sparse_input(model: Any, sparse: bool) -> None:
    """Tell the network's first layer whether a sparse full batch enters it (it must then be a Dense, which
    multiplies it with the library's sparse product instead of its dense fast path)."""
    first = model.root
    while isinstance(first, Sequential):
        first = first.layers[0]
    if sparse and not isinstance(first, Dense):
        raise ValueError(f"a sparse X trained as one batch of every row goes straight into the first layer, "
                         f"which must then be a Dense layer (got {first!r}): use a smaller batch_size")
    if isinstance(first, Dense):
        first.sparse_input = sparse
