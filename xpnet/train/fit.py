"""``xpnet.fit``: check the arguments, place the data, assemble the callbacks, run the one loop."""
from __future__ import annotations

import functools
from typing import Any, Callable, Iterable

from .. import _validate as check
from .. import random as xrandom
from .._xp import device, fetch, is_sparse, namespace
from ..checkpoint import as_checkpoint
from ..nn import Network, Objective
from ..nn.inputs import is_continuous
from ..optim import Adam, Optimizer, Schedule, clip_by_norm, clip_by_value
from .callbacks import CallbackList, EarlyStopping, GradNorms, PrintProgress
from .checkpointing import Checkpointer, catch_signals, check_resume_epochs, resume_state
from .distributed import agreed_setup, data_parallel
from .diagnosing import Diagnostics
from .guard import NonFiniteGuard
from .history import History
from .loop import Trainer, loss_scaler, validation_result, validation_sums
from .stream import Stream, stream_source

__all__ = ["fit", "evaluate"]


def evaluate(model: Network, X: Any, Y: Any, loss: str | None = None, l2: float = 0.0,
             batch_size: int = 8192) -> tuple[float, float | None]:
    """(mean loss + λ/2 ΣW², accuracy or None) of ``model`` on (X, Y) (Y as :meth:`Network.targets`
    makes it), in eval mode, evaluated in chunks of ``batch_size`` rows; one device-to-host transfer."""
    X, Y = model.as_input(X), model.targets(Y) if not hasattr(Y, "shape") or Y.ndim == 1 else Y
    objective = Objective(model, loss)
    sums = validation_sums(model, objective, X, Y, float(l2), check.integer("batch_size", batch_size, low=1))
    names = list(sums)
    host = dict(zip(names, (v[0] for v in fetch(model.xp, [sums[k] for k in names], model.xp.float64))))
    return validation_result(host, X.shape[0], float(l2), objective.hit_denominator(X.shape[0], Y))


@agreed_setup
def fit(model: Network, X: Any, y: Any, *, optimizer: Optimizer | None = None, loss: str | None = None,
        l2: float = 0.0, epochs: int = 10, batch_size: int = 32, shuffle: bool = True,
        validation_split: float = 0.0, validation_data: tuple[Any, Any] | None = None,
        early_stopping: bool = False, patience: int = 10, min_delta: float = 0.0,
        restore_best: bool = True, schedule: Schedule | Callable[[int], float] | None = None,
        clip_value: float | None = None, clip_norm: float | None = None,
        callbacks: Iterable[Any] = (), seed: int | None = None, record_grad_norms: bool = False,
        train_accuracy: bool = True, verbose: bool = False, resume: Any = None, checkpoint: Any = None,
        checkpoint_every: int | None = None, keep_last: int | None = None,
        checkpoint_extra: dict | None = None, diagnostics: bool = False,
        diagnostics_every: int | None = None, precision: Any = None, comm: Any = None) -> History:
    """Train ``model`` (a :class:`~xpnet.Network` or :class:`~xpnet.MLP`) on (X, y) with mini-batch
    gradient descent; returns a :class:`History`.

    X: (n, features) NumPy array, list or array already on the model's device (copied to the device
    once), a SciPy sparse matrix (kept sparse: see :mod:`xpnet.train.loop`), or a NumPy memmap / Dask
    array (streamed block by block: :mod:`xpnet.train.stream`). y: labels or targets as
    :meth:`Network.targets` describes. Each epoch draws a fresh permutation from the counter-based
    generator (key: seed, "shuffle", epoch - 1: epochs are numbered from 1 in the history and
    callbacks); the last partial batch is used; a ``batch_size`` above n means one batch.

    ``validation_split`` holds out that fraction (a fixed random subset); or give
    ``validation_data=(X_val, y_val)`` (not both); ``early_stopping`` stops when the validation loss
    has not improved by ``min_delta`` for ``patience`` epochs and, with ``restore_best``, puts back
    the best parameters. ``schedule(t)`` gives the learning rate of step t. ``callbacks``: callables
    ``cb(epoch, logs) -> stop?`` or objects with the hooks of :mod:`xpnet.train.callbacks`.

    Checkpoints (:mod:`xpnet.checkpoint`): ``checkpoint=path`` writes the whole training state every
    ``checkpoint_every`` epochs (default 1) and at the end; ``{epoch}`` in the path names files by
    epochs completed and ``keep_last=K`` keeps the newest K; ``checkpoint_extra`` (JSON) is stored too.
    With a checkpoint path, SIGINT/SIGTERM (main thread) finish the current step, write the checkpoint
    and raise :class:`xpnet.checkpoint.Interrupted`. ``resume=path or Checkpoint`` continues a run
    (see :mod:`xpnet.train.checkpointing`); ``optimizer=None`` then means the saved optimizer.

    ``diagnostics=True`` (or ``diagnostics_every=N``) records per-layer gradient and activation
    statistics of each epoch's last batch in ``history["diagnostics"]`` and warns about vanishing or
    exploding gradients and dead units. At each epoch's end a NaN/inf in the step losses, parameters,
    gradients or optimizer state raises :class:`TrainingStopped` naming the step, epoch and arrays,
    after restoring the parameters copied at the epoch's start.

    ``precision`` ("float32", "float16", "bfloat16"; default: the model's) sets the model's compute
    precision (:mod:`xpnet.nn.precision`); float16 trains with dynamic loss scaling
    (:class:`xpnet.optim.LossScaler`), recording ``history["loss_scale"]`` and ``["skipped_steps"]``.

    Data too large for memory: X a NumPy memmap or a Dask array (y in memory, or streamed the same
    way) is streamed to the device block by block, never held whole; the shuffle is then by blocks
    and by rows within a block (:mod:`xpnet.train.stream`); validation data must be in memory.

    ``comm`` (an mpi4py communicator, e.g. ``MPI.COMM_WORLD``, or ``"mpi"``): synchronous
    data-parallel training, one process per rank, each giving fit the same arguments; N ranks on a
    global batch of ``batch_size`` rows compute what one process computes (within rounding; see
    :mod:`xpnet.train.distributed`). Rank 0 alone prints and writes checkpoints; every rank returns
    the same history and ends with the same parameters.
    """
    if not isinstance(model, Network):
        raise ValueError(f"model must be an xpnet network (xpnet.Network or xpnet.MLP), got {type(model).__name__}")
    dp = data_parallel(comm, model)  # None without comm
    ck = as_checkpoint(resume)
    if optimizer is None:
        optimizer = ck.new_optimizer() if ck is not None and ck.meta.get("optimizer") else Adam(lr=1e-3)
    if not isinstance(optimizer, Optimizer):
        raise ValueError(f"optimizer must be an xpnet optimizer (e.g. xpnet.Adam(lr=1e-3)), got {optimizer!r}")
    callbacks = CallbackList(callbacks).callbacks  # unusable ones are refused before anything changes
    epochs, batch_size = check.integer("epochs", epochs, low=1), check.integer("batch_size", batch_size, low=1)
    patience = check.integer("patience", patience, low=1)
    l2, min_delta = check.real("l2", l2, 0.0), check.real("min_delta", min_delta, 0.0)
    validation_split = check.real("validation_split", validation_split, 0.0, 1.0, high_open=True)
    every = int(bool(diagnostics)) if diagnostics_every is None else check.integer(
        "diagnostics_every", diagnostics_every, low=1)
    if checkpoint is None and (checkpoint_every is not None or keep_last is not None or checkpoint_extra is not None):
        raise ValueError("checkpoint_every, keep_last and checkpoint_extra need checkpoint=path")
    if stream_source(X) is None:  # (a streamed X is read on the host, whatever y is)
        _same_source(X, y, "X", "y")
    if validation_data is not None:
        if validation_split:
            raise ValueError("validation_split and validation_data cannot both apply: pass one of them")
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError(f"validation_data must be a pair (X_val, y_val), got {type(validation_data).__name__}")
        _same_source(*validation_data, "X_val", "y_val")
    if precision is not None:
        model.set_precision(precision)
    if ck is not None:
        check_resume_epochs(ck, epochs)
        ck.restore(model, optimizer=optimizer)  # parameters, buffers, RNG key and counters, optimizer state
        seed = ck.fit_config.get("seed") if seed is None else seed
    seed = model.seed if seed is None else check.seed(seed)

    source = stream_source(X, batch_size)
    if source is None:
        Xd, Yd, Xv, Yv = _device_data(model, X, y, validation_split, validation_data, seed)
    else:  # memmap / Dask: streamed block by block (xpnet.train.stream)
        if validation_split:
            raise ValueError("validation_split cannot split a streamed X (a memmap or Dask array): pass "
                             "validation_data=(X_val, y_val) in memory")
        Xd = Stream(model, source, y, seed, min(batch_size, source.shape[0]))
        Yd = Xd.target_like
        Xv = Yv = None
        if validation_data is not None:
            Xv, Yv = _validation_arrays(model, validation_data)
    if early_stopping and Xv is None:
        raise ValueError("early_stopping needs validation data: set validation_split (e.g. 0.1) or validation_data")
    objective = Objective(model, loss)
    n = Xd.shape[0]
    batch_size = min(batch_size, n)
    fit_config = {"loss": loss, "l2": l2, "epochs": epochs, "batch_size": batch_size, "shuffle": bool(shuffle),
                  "validation_split": validation_split, "early_stopping": bool(early_stopping),
                  "patience": patience, "min_delta": min_delta, "restore_best": bool(restore_best),
                  "clip_value": clip_value, "clip_norm": clip_norm, "seed": seed, "n_train": n,
                  "n_val": 0 if Xv is None else int(Xv.shape[0]), "schedule": _schedule_config(schedule),
                  "precision": model.precision.compute}
    transforms = ([functools.partial(clip_by_value, c=check.real("clip_value", clip_value, 0.0, low_open=True))]
                  if clip_value is not None else [])
    if clip_norm is not None:
        transforms.append(functools.partial(clip_by_norm, max_norm=check.real("clip_norm", clip_norm, 0.0,
                                                                               low_open=True)))
    stopper = EarlyStopping(bool(early_stopping), patience, min_delta, bool(restore_best))
    resumed = resume_state(ck, model, fit_config, epochs) if ck is not None else {}
    if resumed:
        stopper.load_state(resumed["best"], resumed["waited"], resumed["best_params"], resumed["best_buffers"])
    scaler = loss_scaler(model.precision)
    if scaler is not None and resumed.get("loss_scaler"):
        scaler.load_state(resumed["loss_scaler"])
    if checkpoint_extra is None and ck is not None:
        checkpoint_extra = ck.extra  # a resumed run keeps the saved extra unless given a new one
    with catch_signals(checkpoint is not None) as signals:
        if dp is not None and signals is not None:
            signals = dp.watch(signals)  # any rank's signal stops every rank after the same step
        internal = ([GradNorms()] if record_grad_norms else []) + [NonFiniteGuard()]
        internal += ([Diagnostics(every, objective, l2)] if every else []) + [stopper]
        internal += [PrintProgress()] if verbose and (dp is None or dp.is_root) else []
        saver = [Checkpointer(checkpoint, checkpoint_every, keep_last, checkpoint_extra, fit_config, signals,
                              collective=dp)] if checkpoint is not None else []
        trainer = Trainer(model, optimizer, objective, batch_size=batch_size, seed=seed, l2=l2, shuffle=bool(shuffle),
                          schedule=schedule, transforms=transforms,
                          callbacks=internal + callbacks + saver, track_accuracy=train_accuracy,
                          validation=None if Xv is None else (Xv, Yv), signals=signals, scaler=scaler,
                          distributed=dp)
        return trainer.run(Xd, Yd, epochs, first_epoch=resumed.get("first_epoch", 0),
                           history=resumed.get("history"), partial=resumed.get("partial"),
                           n_val=0 if Xv is None else int(Xv.shape[0]))


def _device_data(model: Network, X: Any, y: Any, validation_split: float, validation_data: Any,
                 seed: int) -> tuple[Any, Any, Any, Any]:
    """(X, Y, X_val, Y_val) on the model's device; the split is a fixed random subset (stream "split")."""
    xp = model.xp
    Xd = model.as_input(X)
    n = Xd.shape[0]
    if n == 0:
        raise ValueError("X is empty: fit needs at least one sample")
    if model.output_auto and is_continuous(model, y):
        model.set_output("identity")
    Yd = model.targets(y)
    if Yd.shape[0] != n:
        raise ValueError(f"X and y have different lengths: {n} samples in X, {Yd.shape[0]} in y")
    _all_finite(xp, Xd, "X")
    if validation_data is not None:
        return (Xd, Yd, *_validation_arrays(model, validation_data))
    if not validation_split:
        return Xd, Yd, None, None
    n_val = int(round(n * validation_split))
    if n_val < 1 or n_val >= n:
        raise ValueError(f"validation_split={validation_split} leaves {n_val} validation and "
                         f"{n - n_val} training samples; both need at least one")
    perm = xrandom.permutation(xp, n, seed, xrandom.STREAMS["split"], 0, model.backend.device)
    rows = Xd.subset if is_sparse(Xd) else (lambda p: xp.take(Xd, p, axis=0))  # sparse X stays sparse
    Xv, Yv = rows(perm[:n_val]), xp.take(Yd, perm[:n_val], axis=0)
    return rows(perm[n_val:]), xp.take(Yd, perm[n_val:], axis=0), Xv, Yv


def _validation_arrays(model: Network, validation_data: Any) -> tuple[Any, Any]:
    """``validation_data`` on the model's device."""
    Xv, Yv = model.as_input(validation_data[0], "X_val"), model.targets(validation_data[1], "y_val")
    _all_finite(model.xp, Xv, "X_val")
    return Xv, Yv


def _all_finite(xp: Any, A: Any, name: str) -> None:
    if not (A.all_finite() if is_sparse(A) else bool(xp.all(xp.isfinite(A)))):
        raise ValueError(f"{name} contains NaN or infinity: clean or impute the data before fitting")


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


def _schedule_config(schedule: Any) -> Any:
    """A JSON description of fit's schedule (for checkpoints)."""
    if schedule is None or not hasattr(schedule, "config"):
        return None if schedule is None else "custom"
    return schedule.config()
