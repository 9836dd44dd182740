"""The training loop: shuffled mini-batches on the device, validation, early stopping.

Per step: gather the batch (its rows of the epoch's permutation) -> forward -> loss and
d_logits -> backward -> optional clipping -> in-place optimizer update. The step's loss
(and correct-prediction count) stay on the device; they cross to the host once per epoch.
"""
from __future__ import annotations

import math
import operator
import time
from typing import Any, Callable, Iterable

from . import checkpoint as _ckpt
from . import diagnostics as _diag
from . import random as xrandom
from ._xp import device, namespace
from .model import MLP
from .optim import Adam, Optimizer, Schedule, clip_by_norm, clip_by_value

__all__ = ["fit", "evaluate", "History", "TrainingStopped"]


class History(dict):
    """What :func:`fit` records. Keys (lists, one entry per epoch unless noted):

    ``loss`` (train objective: batch-mean loss + L2, averaged over the epoch's samples),
    ``accuracy`` (train, from the training forwards, dropout active; None for regression),
    ``val_loss``, ``val_accuracy`` (None without validation), ``lr`` (at the epoch's last
    step), ``time`` (seconds), ``step_loss`` (one per step), ``grad_norms`` (per-layer L2
    norm of the weight gradient at each epoch's last step, when recorded),
    ``diagnostics`` (per-layer statistics of an epoch's last batch when ``fit(diagnostics=True)``
    or ``diagnostics_every=N``; None for the other epochs), ``best_epoch``, ``stopped_early`` (scalars).
    """

    def __init__(self) -> None:
        super().__init__(epoch=[], loss=[], accuracy=[], val_loss=[], val_accuracy=[], lr=[], time=[],
                         step_loss=[], grad_norms=[], best_epoch=None, stopped_early=False)

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class TrainingStopped(RuntimeError):
    """Raised by :func:`fit` when training cannot go on (e.g. a non-finite loss)."""

    def __init__(self, message: str, history: History):
        super().__init__(message)
        self.history = history


def _correct(xp: Any, output: str, z: Any, Y: Any) -> Any:
    """Number of correct predictions in a batch (a 0-d device array)."""
    if output == "softmax":
        return xp.count_nonzero(xp.argmax(z, axis=1) == xp.argmax(Y, axis=1))
    return xp.count_nonzero((z > 0.0) == (Y > 0.5))


def evaluate(model: MLP, X: Any, Y: Any, loss: str | None = None, l2: float = 0.0,
             batch_size: int = 8192) -> tuple[float, float | None]:
    """(mean loss + L2 penalty, accuracy or None) of ``model`` on prepared device arrays X, Y."""
    xp, n = model.xp, X.shape[0]
    fn, fused = model.loss_fn(loss)
    total, correct = 0.0, 0
    sums, hits = [], []
    for i in range(0, n, batch_size):
        z = model.logits(X[i:min(i + batch_size, n), ...])  # in-bounds stops: the array API leaves others open
        y = Y[i:min(i + batch_size, n), ...]
        value = fn(xp, z, y)[0] if fused else fn(xp, model.output_layer.forward(z)[0], y)[0]
        sums.append(value * float(z.shape[0]))
        if model.output != "identity":
            hits.append(_correct(xp, model.output, z, y))
    total = float(xp.sum(xp.stack(sums))) / n
    if l2:
        total += float(xp.vecdot(model._flat_weights, model._flat_weights)) * 0.5 * l2
    if hits:
        per_row = 1 if model.output == "softmax" else Y.shape[1]
        correct = int(xp.sum(xp.stack(hits)))
        return total, correct / (n * per_row)
    return total, None


def _call(callbacks: Iterable[Any], hook: str, *args: Any) -> bool:
    """Run ``hook`` on every callback (a plain callable is an on_epoch_end); True if one asks to stop."""
    stop = False
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is None and hook == "on_epoch_end" and callable(cb):
            fn = cb
        if fn is not None and fn(*args):
            stop = True
    return stop


@_ckpt.interruptible
def fit(model: MLP, X: Any, y: Any, *, optimizer: Optimizer | None = None, loss: str | None = None,
        l2: float = 0.0, epochs: int = 10, batch_size: int = 32, shuffle: bool = True,
        validation_split: float = 0.0, validation_data: tuple[Any, Any] | None = None,
        early_stopping: bool = False, patience: int = 10, min_delta: float = 0.0,
        restore_best: bool = True, schedule: Schedule | Callable[[int], float] | None = None,
        clip_value: float | None = None, clip_norm: float | None = None,
        callbacks: Iterable[Any] = (), seed: int | None = None, record_grad_norms: bool = False,
        train_accuracy: bool = True, verbose: bool = False, resume: Any = None, checkpoint: Any = None,
        checkpoint_every: int | None = None, keep_last: int | None = None,
        checkpoint_extra: dict | None = None, diagnostics: bool = False,
        diagnostics_every: int | None = None) -> History:
    """Train ``model`` on (X, y) with mini-batch gradient descent; returns a :class:`History`.

    X: (n, features) NumPy array, list or array already on the model's device (copied to
    the device once). y: labels or targets as :meth:`MLP.targets` describes. Each epoch
    draws a fresh permutation from the counter-based generator (key: seed, "shuffle",
    epoch); the last partial batch is used; a ``batch_size`` above n means one batch.

    ``validation_split`` holds out that fraction (a fixed random subset) unless
    ``validation_data=(X_val, y_val)`` is given; ``early_stopping`` stops when the
    validation loss has not improved by ``min_delta`` for ``patience`` epochs and, with
    ``restore_best``, puts back the best parameters. ``schedule(t)`` gives the learning
    rate of step t. ``callbacks``: callables ``cb(epoch, logs) -> stop?`` or objects
    with ``on_train_begin(info)``, ``on_epoch_end(epoch, logs)``, ``on_train_end(history)``.

    Checkpoints (:mod:`xpnet.checkpoint`): ``checkpoint=path`` writes the whole training state
    every ``checkpoint_every`` epochs (default 1) and at the end; ``{epoch}`` in the path names
    files by epochs completed and ``keep_last=K`` keeps the newest K; ``checkpoint_extra`` (JSON)
    is stored too (e.g. the input scaler). With a checkpoint path, SIGINT/SIGTERM (main thread)
    finish the current step, write the checkpoint and raise :class:`xpnet.checkpoint.Interrupted`.
    ``resume=path or Checkpoint`` continues a run: parameters, optimizer state and step count,
    dropout counters, the epoch (shuffle counter), early-stopping state and history are restored
    and training goes on up to ``epochs`` in total (bit-identical to an uninterrupted run on the
    same backend); ``optimizer=None`` then means the saved optimizer.

    ``diagnostics=True`` (or ``diagnostics_every=N``: every N epochs) records per-layer gradient and
    activation statistics of each epoch's last batch in ``history["diagnostics"]`` (one entry per
    epoch, None where skipped; see :func:`xpnet.diagnostics.layer_stats`) and warns
    (:class:`xpnet.diagnostics.TrainingWarning`) about vanishing/exploding gradients and dead units.
    At each epoch's end a NaN/inf in the step losses, parameters or gradients raises
    :class:`TrainingStopped` naming the step, epoch and layers, after restoring the parameters
    copied at the epoch's start.
    """
    ck = _ckpt._as_checkpoint(resume)  # None, or the Checkpoint this run continues
    if optimizer is None:
        optimizer = ck.new_optimizer() if ck is not None and ck.meta.get("optimizer") else Adam(lr=1e-3)
    if not isinstance(optimizer, Optimizer):
        raise ValueError(f"optimizer must be an xpnet optimizer (e.g. xpnet.Adam(lr=1e-3)), got {optimizer!r}")
    epochs, batch_size, patience = _positive_int("epochs", epochs), _positive_int("batch_size", batch_size), \
        _positive_int("patience", patience)
    l2, min_delta = _non_negative("l2", l2), _non_negative("min_delta", min_delta)
    if not 0.0 <= float(validation_split) < 1.0:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
    _same_source(X, y, "X", "y")
    if validation_data is not None:
        _same_source(*validation_data, "X_val", "y_val")
    if ck is not None:
        ck.restore(model, optimizer=optimizer)  # parameters, RNG key and counters, optimizer state
        seed = ck.fit_config.get("seed") if seed is None else seed
    seed = model.seed if seed is None else seed
    xp = model.xp

    Xd = model.as_input(X)
    n = Xd.shape[0]
    if n == 0:
        raise ValueError("X is empty: fit needs at least one sample")
    if model.output_auto and _is_continuous(model, y):
        model.set_output("identity")
    Yd = model.targets(y)
    if Yd.shape[0] != n:
        raise ValueError(f"X and y have different lengths: {n} samples in X, {Yd.shape[0]} in y")
    if not bool(xp.all(xp.isfinite(Xd))):
        raise ValueError("X contains NaN or infinity: clean or impute the data before fitting")
    loss_fn, fused = model.loss_fn(loss)

    Xv = Yv = None
    if validation_data is not None:
        Xv, Yv = model.as_input(validation_data[0], "X_val"), model.targets(validation_data[1], "y_val")
    elif validation_split:
        n_val = int(round(n * float(validation_split)))
        if n_val < 1 or n_val >= n:
            raise ValueError(f"validation_split={validation_split} leaves {n_val} validation and "
                             f"{n - n_val} training samples; both need at least one")
        perm = xrandom.permutation(xp, n, seed, xrandom.STREAMS["split"], 0, model.backend.device)
        Xv, Yv = xp.take(Xd, perm[:n_val], axis=0), xp.take(Yd, perm[:n_val], axis=0)
        Xd, Yd = xp.take(Xd, perm[n_val:], axis=0), xp.take(Yd, perm[n_val:], axis=0)
        n = n - n_val
    if early_stopping and Xv is None:
        raise ValueError("early_stopping needs validation data: set validation_split (e.g. 0.1) "
                         "or validation_data")

    callbacks = list(callbacks)
    history = History()
    batch_size = min(batch_size, n)
    steps = math.ceil(n / batch_size)
    track_acc = train_accuracy and model.output != "identity"
    per_row = 1 if model.output == "softmax" else model.sizes[-1]
    best, best_params, waited = math.inf, None, 0
    fit_config = {"loss": loss, "l2": l2, "epochs": epochs, "batch_size": batch_size, "shuffle": bool(shuffle),
                  "validation_split": float(validation_split), "early_stopping": bool(early_stopping),
                  "patience": patience, "min_delta": min_delta, "restore_best": bool(restore_best),
                  "clip_value": clip_value, "clip_norm": clip_norm, "seed": seed, "n_train": n,
                  "n_val": 0 if Xv is None else int(Xv.shape[0]), "schedule": _ckpt._schedule_config(schedule)}
    first_epoch, partial = 0, None
    if ck is not None:
        history, first_epoch, partial, best, waited, best_params = ck._fit_state(model, fit_config, epochs)
    saver = _ckpt._saver(checkpoint, checkpoint_every, keep_last, checkpoint_extra, fit_config, ck)
    every = int(bool(diagnostics)) if diagnostics_every is None else _positive_int("diagnostics_every",
                                                                                     diagnostics_every)
    history.setdefault("diagnostics", [])
    warned: set = set()  # (layer, kind) already warned about
    _call(callbacks, "on_train_begin", {"model": model, "n_train": n, "n_val": 0 if Xv is None else Xv.shape[0],
                                        "epochs": epochs, "steps_per_epoch": steps, "initial_epoch": first_epoch})
    for epoch in range(first_epoch, epochs):
        t0 = time.perf_counter()
        snapshot = model.copy_params()  # the last finite parameters, put back by the non-finite guard
        # Each batch gathers its rows of the epoch's permutation: no shuffled copy of the dataset.
        perm = xrandom.permutation(xp, n, seed, xrandom.STREAMS["shuffle"], epoch, model.backend.device) \
            if shuffle else None
        losses, hits = [], []
        done, partial = partial or _ckpt.EPOCH_START, None  # a resumed unfinished epoch: its first steps
        for i in range(done["step_in_epoch"] * batch_size, n, batch_size):
            if perm is None:
                xb, yb = Xd[i:min(i + batch_size, n), ...], Yd[i:min(i + batch_size, n), ...]
            else:
                rows = perm[i:min(i + batch_size, n)]
                xb, yb = xp.take(Xd, rows, axis=0), xp.take(Yd, rows, axis=0)
            if schedule is not None:
                optimizer.lr = schedule(optimizer.t)
            value, z = model._step(xb, yb, loss_fn, fused, l2)
            if clip_value is not None:
                clip_by_value(model.grads, clip_value)
            if clip_norm is not None:
                clip_by_norm(model.grads, clip_norm)
            optimizer.step(model.params, model.grads)
            losses.append(value)
            if track_acc:
                hits.append(_correct(xp, model.output, z, yb))
            if saver is not None and saver.signalled and i + batch_size < n:  # SIGINT/SIGTERM mid-epoch
                saver.interrupt(model, optimizer, history, epoch, i // batch_size + 1, done, losses, hits, t0,
                                {"best": best, "waited": waited, "best_params": best_params})
        step_loss = done["step_loss"] + model.backend.to_numpy(xp.stack(losses)).tolist()  # one transfer per epoch
        last = n - (steps - 1) * batch_size
        epoch_loss = (sum(step_loss[:-1]) * batch_size + step_loss[-1] * last) / n
        history["epoch"].append(epoch)
        history["step_loss"].extend(step_loss)
        history["loss"].append(epoch_loss)
        hit_count = done["hits"] + int(xp.sum(xp.stack(hits))) if track_acc else 0
        history["accuracy"].append(hit_count / (n * per_row) if track_acc else None)
        history["lr"].append(optimizer.lr)
        if record_grad_norms:
            history["grad_norms"].append([float(xp.sqrt(xp.vecdot(xp.reshape(g, (-1,)), xp.reshape(g, (-1,)))))
                                          for g in model.weight_grads])
        if Xv is not None:
            val_loss, val_acc = evaluate(model, Xv, Yv, loss, l2)
        else:
            val_loss, val_acc = None, None
        history["val_loss"].append(val_loss)
        history["val_accuracy"].append(val_acc)
        history["time"].append(done["time"] + time.perf_counter() - t0)
        problem = _diag.nonfinite_report(model, step_loss, epoch, snapshot)  # one reduction per epoch
        if problem is not None:
            raise TrainingStopped(problem, history)
        if every:  # statistics of the epoch's last batch (one extra forward/backward)
            stats = _diag._stats(model, xb, yb, loss_fn, fused, l2) if (epoch + 1) % every == 0 and losses else None
            history["diagnostics"].append(stats)
            if stats is not None:
                _diag.check(stats, epoch=epoch, seen=warned)
        monitor = val_loss if val_loss is not None else epoch_loss
        if monitor < best - min_delta:
            best, waited, history["best_epoch"] = monitor, 0, epoch
            if early_stopping and restore_best:
                best_params = model.copy_params()
        else:
            waited += 1
        logs = {k: history[k][-1] for k in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "time")}
        if verbose:
            print(f"epoch {epoch + 1}/{epochs}  " + "  ".join(
                f"{k} {v:.4g}" for k, v in logs.items() if v is not None), flush=True)
        stop = _call(callbacks, "on_epoch_end", epoch, logs)
        if early_stopping and waited >= patience:
            history["stopped_early"] = True
            stop = True
        if saver is not None:  # every checkpoint_every epochs, at the end, or on a signal (then raises)
            saver.after_epoch(model, optimizer, history, epoch + 1, stop or epoch + 1 == epochs,
                              {"best": best, "waited": waited, "best_params": best_params})
        if stop:
            break
    if early_stopping and restore_best and best_params is not None:
        model.set_params(best_params)
    _call(callbacks, "on_train_end", history)
    return history


def _is_continuous(model: MLP, y: Any) -> bool:
    """Whether y holds non-integer floats (a regression target)."""
    xp = model.xp
    Y = model._on_device(y, "y")
    return (bool(xp.isdtype(Y.dtype, "real floating")) and Y.shape[0] > 0 and bool(xp.all(xp.isfinite(Y)))
            and not bool(xp.all(Y == xp.round(Y))))


def _same_source(X: Any, y: Any, x_name: str, y_name: str) -> None:
    """Reject X and y that are arrays of different libraries or devices (host lists pass)."""
    try:
        spaces, devices = (namespace(X), namespace(y)), (device(X), device(y))
    except TypeError:  # a list, tuple or other host sequence: converted like NumPy data
        return
    if spaces[0] is not spaces[1] or devices[0] != devices[1]:
        a, b = (f"{s.__name__.rsplit('.', 1)[-1]} on {d}" for s, d in zip(spaces, devices))
        raise ValueError(f"{x_name} ({a}) and {y_name} ({b}) come from different array libraries or devices: "
                         f"pass both from the same one (the model copies them to its own device)")


def _positive_int(name: str, v: Any) -> int:
    try:
        i = operator.index(v)
    except TypeError:
        i = 0
    if isinstance(v, bool) or i < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return i


def _non_negative(name: str, v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number >= 0, got {v!r}") from None
    if not (f >= 0.0 and math.isfinite(f)):
        raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    return f
