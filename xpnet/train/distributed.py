"""Synchronous data-parallel training: the hooks the one loop calls when ``fit(..., comm=...)`` is given.

N processes (ranks) training on a global batch of B rows compute what one process computes on B:

* Every rank holds the whole training set and draws the same epoch permutation; of each global
  batch (rows ``i .. i+B-1`` of the permutation) rank r takes its contiguous share :func:`share`
  (the first ``B mod N`` ranks one row more; a small last batch may leave a rank nothing).
* Dropout draws, on each rank, its rows of the global batch's masks (:meth:`Network.hold_rows`:
  the mask words come from the rows' offset), so the masks are the single-process run's.
* The rank's batch-mean loss and gradient are scaled by its share of the rows, b_r / B, and
  written with its correct-prediction count into ONE buffer ``[gradient | loss | hits | signals]``
  that ONE Allreduce(SUM) per step turns into the global batch's mean gradient, loss and hits.
  L2 (λ of the global batch) is added after the reduce, then the loop clips and steps as ever:
  every rank applies the same update to the same parameters. A rank with no rows contributes
  zeros (its dropout counters still advance) and still takes part.
* Validation: each rank evaluates its contiguous share of the validation set; the sums are added
  over the ranks at the epoch's end (one small host collective that also compares a checksum of
  the parameters (Σp, Σp²): ranks that drift apart stop with :class:`DistributedError`, and
  agrees on signals). Early stopping and every callback's stop request are agreed (any rank
  stops: all stop).
* SIGINT/SIGTERM on any rank: the signal travels in the step's buffer, so every rank stops after
  the same step; rank 0 alone writes the checkpoint (the others wait for it, :meth:`on_root`) and
  every rank raises :class:`~xpnet.checkpoint.Interrupted` with its path.
* An exception on one rank only (a bug, a full disk on rank 0's checkpoint is shared and raised
  everywhere, so not that) would leave the others waiting: it prints one line and aborts the job;
  the communicator's watchdog aborts a job whose collective waits beyond its timeout.

With one rank everything reduces to the single-process arithmetic, bit for bit (the scale is
exactly 1). Numbers within rounding of the single-process run: the sums over ranks add partial
sums in another order (measured ≤ 1e-15 relative in float64). BatchNorm1d would see per-rank batch
statistics and is refused with more than one rank.

The communicator is any object with ``rank``, ``size``, ``bind(backend)``, ``allreduce_(buf)``,
``allgather``, ``bcast``, ``abort``: ``backends.communicator`` wraps mpi4py's (MPI, NCCL; see
``backends/_comm.py``); the tests also run N ranks as threads.
"""
from __future__ import annotations

import contextlib
import functools
import math
import signal
import threading
from typing import Any, Callable

import backends as _backends

from .._xp import fetch
from ..nn import BatchNorm1d, walk
from .callbacks import Callback

__all__ = ["DataParallel", "DistributedError", "share", "data_parallel", "agreed_setup"]

Array = Any
_SETUP = threading.local()  # the DataParallel whose set-up (in fit) has not reached the loop yet


class DistributedError(RuntimeError):
    """A failure every rank of a data-parallel run agrees on (raised on all of them)."""

    agreed = True


def share(rows: int, size: int, rank: int) -> tuple[int, int]:
    """Rank ``rank``'s contiguous share ``[lo, hi)`` of ``rows`` rows split over ``size`` ranks: the first
    ``rows mod size`` ranks take one row more than the others (a rank may get none)."""
    base, extra = divmod(rows, size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


def data_parallel(comm: Any, model: Any) -> "DataParallel | None":
    """A :class:`DataParallel` for ``comm`` (None: single-process training)."""
    if comm is None:
        return None
    dp = _SETUP.dp = DataParallel(_backends.communicator(comm), model)
    return dp


def agreed_setup(fit: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a function that creates a :class:`DataParallel` (:func:`data_parallel`) and then trains: an
    error of its set-up on one rank is shared with the others in the loop's first collective, so every rank
    raises (the others a :class:`DistributedError` naming it) instead of waiting for the failed one."""
    @functools.wraps(fit)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _SETUP.dp = None
        try:
            return fit(*args, **kwargs)
        except Exception as exc:
            dp, _SETUP.dp = getattr(_SETUP, "dp", None), None
            if dp is not None and not dp.started:
                dp.comm.allgather(("error", f"{type(exc).__name__}: {' '.join(str(exc).split())}"))
                with contextlib.suppress(AttributeError):
                    exc.agreed = True
            raise
        finally:
            _SETUP.dp = None
    return wrapper


def agreed(exc: BaseException) -> bool:
    """Whether every rank raises ``exc`` at the same point (so nobody is left waiting)."""
    from ..checkpoint import Interrupted
    from .history import TrainingStopped

    return isinstance(exc, (Interrupted, TrainingStopped)) or bool(getattr(exc, "agreed", False))


class AgreedSignals:
    """The loop's view of SIGINT/SIGTERM under data parallelism: ``signum`` is the signal the ranks agreed
    on (any rank's), updated with every step's allreduce and at every epoch's end; ``raw`` is this
    rank's own catcher."""

    def __init__(self, raw: Any):
        self.raw, self.signum = raw, 0

    def flags(self) -> tuple[float, float]:
        s = self.raw.signum if self.raw is not None else 0
        return float(s == signal.SIGINT), float(s == signal.SIGTERM)

    def agree(self, sigint: float, sigterm: float) -> None:
        if self.signum or not (sigint or sigterm):
            return
        own = self.raw.signum if self.raw is not None else 0
        self.signum = own or (signal.SIGINT if sigint else signal.SIGTERM)


class DataParallel(Callback):
    """The data-parallel hooks of the one loop (see the module docstring); also a callback, first in the
    loop's list: it checks at the start that the ranks train the same thing, and fetches the checksum."""

    def __init__(self, comm: Any, model: Any):
        self.comm = comm
        self.rank, self.size = comm.rank, comm.size
        self.is_root = self.rank == 0
        if self.size > 1:
            norms = [path for path, layer in walk(model.root) if isinstance(layer, BatchNorm1d)]
            if norms:
                raise ValueError(f"BatchNorm1d (layer {norms[0]}) would normalize each rank's share of a batch with "
                                 f"that share's statistics, not the global batch's: data-parallel training does not "
                                 f"synchronize batch statistics; train this network on one process")
        comm.bind(model.backend)
        self.model = model
        self.started = False  # the loop's first collective (on_train_begin) happened
        self.signals: AgreedSignals | None = None
        self._buf: Array = None

    def describe(self) -> str:
        return self.comm.describe() if hasattr(self.comm, "describe") else f"{self.size} ranks"

    # ------------------------------------------------------------------ set-up, agreement
    def watch(self, catcher: Any) -> AgreedSignals:
        """The signal view the loop and the checkpointer read (see :class:`AgreedSignals`)."""
        self.signals = AgreedSignals(catcher)
        return self.signals

    def on_root(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on rank 0 only (checkpoint writes); the others wait for it. Its error is raised on
        every rank (an OSError as an OSError, so the CLI's exit status agrees)."""
        if self.size == 1:
            return fn(*args)
        outcome = None
        if self.is_root:
            try:
                fn(*args)
            except Exception as exc:
                outcome = (type(exc).__name__, str(exc), getattr(exc, "errno", None), getattr(exc, "strerror", None),
                           getattr(exc, "filename", None))
                self.comm.bcast(outcome)
                with contextlib.suppress(AttributeError):
                    exc.agreed = True
                raise
        outcome = self.comm.bcast(outcome)
        if outcome is None:
            return None
        name, text, errno, strerror, filename = outcome
        if errno is not None:
            exc: Exception = OSError(errno, strerror, filename)
        elif name == "ValueError":
            exc = ValueError(f"rank 0: {text}")
        else:
            exc = DistributedError(f"rank 0: {name}: {text}")
        exc.agreed = True  # type: ignore[attr-defined]
        raise exc

    def guarded(self, run: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run the loop; an error raised on this rank alone aborts the job (with one line) instead of leaving the
        other ranks waiting in their next collective. Dropout goes back to whole batches afterwards."""
        try:
            return run(*args, **kwargs)
        except BaseException as exc:
            if self.size > 1 and not agreed(exc):
                self.comm.abort(f"{type(exc).__name__}: {' '.join(str(exc).split())}")
            raise
        finally:
            self.model.hold_rows(None)

    def on_train_begin(self, info: dict) -> None:
        """Every rank must train the same model on the same data with the same settings: compare."""
        trainer, model = info["trainer"], info["model"]
        xp = model.xp
        total, squares = (v[0] for v in fetch(xp, [xp.sum(model.params), xp.vecdot(model.params, model.params)],
                                                  xp.float64))
        mine = {"rows": info["n_train"], "validation rows": info["n_val"], "batch size": trainer.batch_size,
                "seed": trainer.seed, "model seed": model.seed, "parameters": model.n_params,
                "parameter checksum": (total, squares), "epochs": info["epochs"],
                "first epoch": info["initial_epoch"], "optimizer": type(info["optimizer"]).__name__,
                "optimizer step": info["optimizer"].t, "dropout counters": model.counters,
                "dtype": model.dtype_name, "backend": model.backend.name}
        every = self.comm.allgather(("ok", mine))  # also where a rank whose set-up failed reports it
        self.started, _SETUP.dp = True, None
        failed = [(r, m) for r, (kind, m) in enumerate(every) if kind == "error"]
        if failed:
            raise DistributedError(f"xpnet's set-up failed on rank {failed[0][0]} of {self.size}: {failed[0][1]}")
        every = [m for _, m in every]
        for key in mine:
            values = [m[key] for m in every]
            if any(v != values[0] for v in values):
                shown = ", ".join(f"rank {r}: {v!r}" for r, v in enumerate(values))
                raise DistributedError(f"the ranks do not train the same thing: {key} differ ({shown}); give every "
                                       f"rank the same model, data and settings")
        self.n = info["n_train"]
        self.batch_size = trainer.batch_size
        self.l2 = trainer.l2
        self.objective = trainer.objective
        self.track = trainer.track_accuracy
        P, extra = model.n_params, 4
        self._buf = xp.zeros((P + extra,), dtype=model.dtype, device=model.backend.device)
        self._zero = xp.zeros((), dtype=model.dtype, device=model.backend.device)

    # ------------------------------------------------------------------ each step
    def part(self, start: int, stop: int) -> tuple[int, int]:
        """This rank's rows ``[start + lo, start + hi)`` of the global batch ``[start, stop)``: (lo, hi)."""
        return share(stop - start, self.size, self.rank)

    def step(self, xb: Array, yb: Array, start: int, scale: float | None) -> tuple[Array, Array | None]:
        """Forward and backward on this rank's rows ``xb`` of the global batch starting at row ``start`` of the
        epoch, then the one allreduce and L2; returns the global batch's (loss, hits)."""
        model, xp, buf = self.model, self.model.xp, self._buf
        total = min(self.batch_size, self.n - start)
        lo, hi = share(total, self.size, self.rank)
        model.hold_rows((lo, total))
        P = model.n_params
        if hi > lo:
            value, z = model.train_step(xb, yb, self.objective, 0.0, scale)
            hit = self.objective.hits(z, yb) if self.track else None
            model.grads *= (hi - lo) / total
            value = value * ((hi - lo) / total)
        else:  # nothing of this batch here: zeros, and the dropout counters move on as the others' do
            model.skip_forward()
            model.grads[...] = 0.0
            value = hit = self._zero
        buf[:P] = model.grads
        buf[P] = xp.astype(value, buf.dtype)
        buf[P + 1] = 0.0 if hit is None else xp.astype(hit, buf.dtype)
        if self.signals is not None:
            buf[P + 2], buf[P + 3] = self.signals.flags()
        self.comm.allreduce_(buf)
        model.grads[...] = buf[:P]
        value, hit = buf[P] * 1.0, buf[P + 1] * 1.0
        if self.signals is not None:
            self.signals.agree(*fetch(xp, [buf[P + 2:]], xp.float64)[0])
        lam = self.l2(total) if callable(self.l2) else self.l2
        if callable(self.l2) or lam:
            value = model.add_l2(value, lam)
        return value, (hit if self.track else None)

    # ------------------------------------------------------------------ each epoch
    def validation_share(self, X: Array, Y: Array) -> tuple[Array, Array]:
        lo, hi = share(X.shape[0], self.size, self.rank)
        return X[lo:hi, ...], Y[lo:hi, ...]

    def device_values(self, epoch: int) -> dict:
        xp, p = self.model.xp, self.model.params
        return {"dp_sum": xp.sum(p), "dp_squares": xp.vecdot(p, p)}

    def end_epoch(self, epoch: int, fetched: dict) -> None:
        """One host allgather: add the validation sums over the ranks (in ``fetched``), compare the parameter
        checksums, agree on signals."""
        keys = ("val_loss_sum", "val_hits")
        flags = self.signals.flags() if self.signals is not None else (0.0, 0.0)
        mine = ([fetched.get(k) for k in keys], (fetched["dp_sum"], fetched["dp_squares"]), flags)
        every = self.comm.allgather(mine)
        for j, k in enumerate(keys):
            if k in fetched:
                fetched[k] = math.fsum(m[0][j] for m in every)
        sums = [m[1] for m in every]
        if any(s != sums[0] for s in sums):
            shown = ", ".join(f"rank {r}: Σp={s[0]!r}, Σp²={s[1]!r}" for r, s in enumerate(sums))
            raise DistributedError(f"the parameters of the ranks drifted apart after epoch {epoch} ({shown}): the "
                                   f"ranks must apply identical updates; check that every rank has the same data, "
                                   f"settings and library versions")
        if self.signals is not None:
            self.signals.agree(sum(m[2][0] for m in every), sum(m[2][1] for m in every))

    def agree(self, stop: bool) -> bool:
        """Stop if any rank's callbacks asked to."""
        return any(self.comm.allgather(bool(stop)))
