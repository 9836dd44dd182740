"""Training steps replayed from CUDA graphs: one launch and no host work per step.

A CUDA graph replays recorded kernels on recorded addresses with recorded scalar arguments, and
no Python. So the step recorded here reads everything that changes between steps from device memory:

- ``step``: the step's index in the epoch (0-d int64; the step increments it);
- ``order``: the epoch's permutation of the rows (rewritten at the epoch's start); the step's
  batch is rows ``order[step·bs + j]``, j < its size, gathered from X and Y on the device;
- ``scalars[step]``: the optimizer's scalars (:meth:`~xpnet.optim.Optimizer.scalars`: the schedule's
  learning rate, bias corrections), computed on the host in float64 for the epoch's steps;
- ``keys[d, step]``: Dropout layer d's key words for its counter at that step
  (:func:`xpnet.random.key_words`; the masks have the same bits as in eager steps);
- ``loss[step]``, ``hits[step]``: where the step leaves its loss and correct-prediction count.

Per epoch the host writes those tables (one host-to-device copy each) and resets ``step``. Per
step it replays the recording and advances its own copies of what the device advanced: the
optimizer's ``t`` and ``lr`` and the Dropout counters, which checkpoints and the history read.
A learning rate the schedule gets wrong stops the run at the epoch's start rather than at its step.

Before the first step, :meth:`GraphedSteps.probe` runs what the recorded step reads from the device
beyond an eager step, on scratch values; fused kernels that take device scalars (``device_scalars``:
CuPy's Adam and dropout mask) must give the numbers they give with host scalars, or the run trains
eagerly. Each batch size (the full one, and the last batch's when n is not a multiple) is recorded the
first time it comes (that step runs for real while being recorded, see ``backends/_graphs.py``). Its
first replay is checked against an eager run of the same step from the same state; if the recording
fails or they differ, one log line says so and that size runs eagerly: the same code launched from Python.
"""
from __future__ import annotations

import copy
import functools
import logging
import math
from typing import Any, Callable, Iterator

from backends import CaptureFailed

from .. import _validate as check
from .. import random as xrandom
from .._xp import fetch, is_sparse

__all__ = ["GraphedSteps", "graphed_steps", "why_not_graphed"]

Array = Any
log = logging.getLogger("xpnet")


def why_not_graphed(trainer: Any, X: Any) -> str | None:
    """Why ``trainer``'s steps on X cannot be replayed from a graph (None: they can)."""
    if trainer.optimizer.needs_closure:
        return f"{type(trainer.optimizer).__name__} re-evaluates the loss within a step"
    if trainer.scaler is not None:
        return "float16 loss scaling reads its overflow flag on the host every step"
    if trainer.distributed is not None:
        return "data-parallel steps allreduce through the host"
    if trainer.on_step is not None:
        return "on_step reads every step's loss on the host"
    if hasattr(X, "batches") or is_sparse(X):
        return "X is streamed or sparse"
    return None


def graphed_steps(trainer: Any, X: Array, Y: Array) -> GraphedSteps | None:
    """The graphed steps of ``trainer`` on (X, Y), or None for eager launches: where the backend cannot
    record CUDA graphs (CPU backends; XPNET_CUDA_GRAPHS=0), or, with one log line, where the run cannot."""
    if not trainer.model.backend.can_capture or X.shape[0] == 0:
        return None
    why = why_not_graphed(trainer, X)
    if why is None:
        try:
            steps = GraphedSteps(trainer, X, Y)
            steps.probe()
            return steps
        except Exception as exc:  # noqa: BLE001 - whatever this backend lacks, the eager step still trains
            why = "the recorded step's device reads failed here: " + " ".join(f"{type(exc).__name__}: {exc}".split())
    log.warning("xpnet: CUDA graphs off for this run (%s); eager launches", why)
    return None


class GraphedSteps:
    """The device tables and recordings of ``trainer``'s steps on (X, Y) (module docstring)."""

    def __init__(self, trainer: Any, X: Array, Y: Array):
        model, opt = trainer.model, trainer.optimizer
        xp, dev = model.xp, model.backend.device
        self.trainer, self.model, self.backend, self.xp, self.device = trainer, model, model.backend, xp, dev
        self.X, self.Y = X, Y
        self.n, self.bs = X.shape[0], trainer.batch_size
        self.steps = math.ceil(self.n / self.bs)
        opt.bind(model.params)
        self.drawing = [layer for layer in model.dropout_layers if layer.p != 0.0]
        self.step = xp.zeros((), dtype=xp.int64, device=dev)
        self.order = xp.arange(self.n, dtype=xp.int64, device=dev)
        self.scalars = xp.zeros((self.steps, len(opt.scalars(1, opt.lr))), dtype=model.dtype, device=dev)
        words = xrandom.key_words(xp, 0, 0, [0], dev).dtype
        self.keys = xp.zeros((len(self.drawing), self.steps, 2), dtype=words, device=dev)
        self.loss = xp.zeros((self.steps,), dtype=model.dtype, device=dev)
        self.hits = xp.zeros((self.steps,), dtype=xp.int64, device=dev)
        self._positions = xp.arange(self.steps, dtype=xp.int64, device=dev)
        self._programs: dict[int, Callable[[], None]] = {}
        self._replays: dict[int, list] = {}  # size -> [replay or None (eager), checked?, the recorded batch]
        self.first = self.done = 0
        self._lrs: list[float] = []  # the epoch's learning rates, from its first step run
        self.last_batch: tuple[Array, Array] | None = None

    def probe(self) -> None:
        """Run once, on scratch values, what a recorded step does beyond an eager one: the gather through
        ``order``, the table reads, and the optimizer's and Dropout's kernels fed device scalars, which must give
        the numbers (the mask bits) they give with host scalars. Raises where this backend falls short."""
        xp, dev, opt = self.xp, self.device, self.trainer.optimizer
        offsets = xp.arange(min(self.bs, self.n), dtype=xp.int64, device=dev)
        rows = xp.take(self.order, self.step * self.bs + offsets)
        xp.take(self.X, rows, axis=0), xp.take(self.Y, rows, axis=0)
        here = self._positions == self.step
        xp.where(here, xp.astype(self.loss[0], self.loss.dtype), self.loss * 0.0)
        counter = self.step * 1
        counter += 1
        pairs = []
        host = opt.scalars(1, opt.lr)
        table = xp.asarray([host], dtype=self.scalars.dtype, device=dev)
        row = xp.take(table, self._at() * 0, axis=0)
        grads = xp.astype(xp.arange(16, device=dev), self.scalars.dtype) / 8.0 - 1.0
        for scalars, fused in ((host, opt._fused), (tuple(row[0, j] for j in range(row.shape[1])), opt.device_fused)):
            scratch = copy.copy(opt)
            scratch.state = {}
            params = grads * 0.5 + 1.0
            scratch.update(params, grads, scalars, fused)
            pairs.append(params)
        for layer in self.drawing[:1]:
            words = xrandom.key_words(xp, self.model.seed, layer.stream, [layer.counter], dev)
            pairs.append(layer.mask((3, 7), self.model.dtype, layer.counter))
            layer.key_source = lambda: (words[0, 0], words[0, 1])
            try:
                pairs.append(layer.mask((3, 7), self.model.dtype, layer.counter))
            finally:
                layer.key_source = None
        gaps = fetch(xp, [xp.max(xp.abs(pairs[i] - pairs[i + 1])) for i in range(0, len(pairs), 2)], xp.float64)
        if any(g[0] != 0.0 for g in gaps):
            raise RuntimeError(f"device scalars give other numbers than host scalars (gaps {[g[0] for g in gaps]})")

    # ------------------------------------------------------------------ the recorded step
    def _program(self, size: int) -> Callable[[], None]:
        """The step on a batch of ``size`` rows, reading what changes between steps from the device."""
        if size in self._programs:
            return self._programs[size]
        xp, trainer, model, opt = self.xp, self.trainer, self.model, self.trainer.optimizer
        objective, l2, transforms = trainer.objective, trainer.l2, trainer.transforms
        offsets = xp.arange(size, dtype=xp.int64, device=self.device)

        def step() -> None:
            rows = xp.take(self.order, self.step * self.bs + offsets)
            xb, yb = xp.take(self.X, rows, axis=0), xp.take(self.Y, rows, axis=0)
            value, z = model.train_step(xb, yb, objective, l2)
            for transform in transforms:
                transform(model.grads)
            s = xp.take(self.scalars, self._at(), axis=0)
            opt.update(model.params, model.grads, tuple(s[0, j] for j in range(s.shape[1])), opt.device_fused)
            here = self._positions == self.step
            self.loss[...] = xp.where(here, xp.astype(value, self.loss.dtype), self.loss)
            if trainer.track_accuracy:
                self.hits[...] = xp.where(here, xp.astype(objective.hits(z, yb), xp.int64), self.hits)
            self.step += 1
            self.last_batch = (xb, yb)

        self._programs[size] = step
        return step

    def _at(self) -> Array:
        """The step index as a length-1 index array (for ``take``)."""
        return self.xp.reshape(self.step, (1,))

    def _key(self, d: int) -> tuple[Array, Array]:
        row = self.xp.take(self.keys[d, ...], self._at(), axis=0)
        return row[0, 0], row[0, 1]

    # ------------------------------------------------------------------ an epoch
    def epoch(self, index: int, first_step: int) -> Iterator[int]:
        """Run epoch ``index`` (its shuffle counter) from step ``first_step``; yields each step's first
        row (as the eager loop numbers it) after the step ran. Close it (``contextlib.closing``)."""
        self.first = self.done = first_step
        if first_step >= self.steps:
            return
        self._write_tables(index, first_step)
        opt, lrs = self.trainer.optimizer, self._lrs
        for d, layer in enumerate(self.drawing):
            layer.key_source = functools.partial(self._key, d)
        try:
            for k in range(first_step, self.steps):
                self._run(min(self.bs, self.n - k * self.bs))
                opt.t, opt.lr = opt.t + 1, lrs[k - first_step]
                for layer in self.drawing:
                    layer.counter += 1
                self.done = k + 1
                yield k * self.bs
        finally:
            for layer in self.drawing:
                layer.key_source = None

    def _write_tables(self, index: int, first_step: int) -> None:
        """The epoch's permutation, scalars and key words on the device, and ``step`` = ``first_step``."""
        xp, trainer, dev = self.xp, self.trainer, self.device
        opt, schedule = trainer.optimizer, trainer.schedule
        if trainer.shuffle:
            self.order[...] = xrandom.permutation(xp, self.n, trainer.seed, xrandom.STREAMS["shuffle"], index, dev)
        count, t0 = self.steps - first_step, opt.t
        if schedule is None:
            self._lrs = [opt.lr] * count
        else:  # a rate that is not a finite number >= 0 stops with a ValueError
            self._lrs = [check.learning_rate(schedule, t0 + k, schedule(t0 + k)) for k in range(count)]
        table = [opt.scalars(t0 + k + 1, lr) for k, lr in enumerate(self._lrs)]
        table = [table[0]] * first_step + table  # the skipped steps' rows are never read
        self.scalars[...] = xp.asarray(table, dtype=self.scalars.dtype, device=dev)
        for d, layer in enumerate(self.drawing):
            counters = [layer.counter + max(k - first_step, 0) for k in range(self.steps)]
            self.keys[d, ...] = xrandom.key_words(xp, self.model.seed, layer.stream, counters, dev)
        self.step[...] = first_step

    def losses(self) -> Array:
        """The device losses of the steps run so far this epoch (1-D)."""
        return self.loss[self.first:self.done]

    def hit_counts(self) -> Array | list:
        """The device correct-prediction counts of the steps run so far this epoch (1-D; [] without accuracy)."""
        return self.hits[self.first:self.done] if self.trainer.track_accuracy else []

    # ------------------------------------------------------------------ record, check, replay
    def _run(self, size: int) -> None:
        entry = self._replays.get(size)
        if entry is None:  # this size's first step: it runs while it is recorded
            replay = self._record(size)
            self._replays[size] = [replay, False, self.last_batch]
        elif entry[0] is None:
            self._program(size)()
        elif not entry[1]:
            entry[0], entry[1] = self._checked(size, entry[0]), True
        else:
            self.last_batch = entry[2]  # the recording's batch arrays, which each replay overwrites
            entry[0]()

    def _record(self, size: int) -> Callable[[], None] | None:
        try:
            return self.backend.capture(self._program(size))
        except CaptureFailed as exc:
            log.warning("xpnet: could not record the training step (batch of %d rows) as a CUDA graph (%s); "
                        "eager launches", size, exc)
            return None

    def _state(self) -> list[Array]:
        """Every array a step changes (besides gradients and temporaries)."""
        parts = [self.model.params, self.model.buffers, *self.trainer.optimizer.state.values(),
                 self.step, self.loss, self.hits]
        return [a for a in parts if a.shape != (0,)]

    def _checked(self, size: int, replay: Callable[[], None]) -> Callable[[], None] | None:
        """``replay`` if one replay lands where an eager run of the same step from the same state does,
        else None (with one log line). Either way the step has run once."""
        xp, state = self.xp, self._state()
        before = [a * 1 for a in state]
        replay()
        replayed = [a * 1 for a in state]
        for a, b in zip(state, before):
            a[...] = b
        self._program(size)()
        f64 = [(xp.astype(r, xp.float64), xp.astype(e, xp.float64)) for r, e in zip(replayed, state)]
        gaps = fetch(xp, [xp.max(xp.abs(r - e)) for r, e in f64] + [xp.max(xp.abs(e)) for _, e in f64], xp.float64)
        gaps = [g[0] for g in gaps]
        tol = 1e-10 if self.model.params.dtype == xp.float64 else 1e-4
        worst = max(gap / (1.0 + scale) for gap, scale in zip(gaps[:len(state)], gaps[len(state):]))
        if not worst <= tol:
            log.warning("xpnet: a CUDA graph replay of the training step (batch of %d rows) differs from the eager "
                        "step (relative gap %.3g); eager launches", size, worst)
            return None
        return replay
