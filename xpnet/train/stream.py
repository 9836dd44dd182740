"""Training data too large for memory: a NumPy memmap or a Dask array streamed to the device block by block.

``xpnet.fit(model, X, y)`` with such an X never holds all of it: each epoch reads one block at a time
(a Dask chunk of rows, or a memmap window of about 16 MiB: ``backends.block_source``), moves it to
the device, and forgets it once its rows are trained on. Peak memory: about two blocks, whatever
the size of X. y may be in memory or streamed the same way (a memmap or Dask array of its rows).

The shuffle (documented, reproducible, from the counter-based generator): the epoch whose shuffle
counter is c (epoch c + 1; see :mod:`xpnet.train.loop`) visits the blocks in the order of
``permutation(blocks, seed, "blocks", c)``; block b's rows are permuted with
``(seed, "window", c · blocks + b)``; the epoch's row order is those permuted blocks one after the
other, cut into batches of ``batch_size`` (a batch may span two blocks; the last one is partial). So
rows mix within a block, and blocks in random order: a coarser shuffle than an in-memory X's
(one permutation of every row), which is the price of the bounded memory. Each block's features
(NaN/inf) and labels are checked as the block arrives.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import backends as _backends

from .. import random as xrandom

__all__ = ["Stream", "stream_source", "block_order", "block_random_state"]

Array = Any


def stream_source(X: Any, min_rows: int = 1) -> Any:
    """The block source of a streamable X (memmap, Dask array), else None."""
    return _backends.block_source(X, min_rows)


def block_order(n_blocks: int, seed: int, counter: int) -> list[int]:
    """The order in which epoch ``counter`` visits ``n_blocks`` blocks (key: seed, "blocks", counter)."""
    be = _backends.get("numpy")
    perm = xrandom.permutation(be.xp, n_blocks, seed, xrandom.STREAMS["blocks"], counter, be.device)
    return [int(v) for v in be.to_numpy(perm)]


def block_random_state(seed: int) -> Any:
    """A ``numpy.random.RandomState`` for ``dask_ml.wrappers.Incremental(random_state=...)`` whose block shuffle
    is xpnet's counter-based :func:`block_order`: the c-th ``fit``/``partial_fit`` (counted from 0) visits the
    blocks in ``block_order(blocks, seed, c)``, so results are reproducible and can be replayed exactly."""
    calls = [0]

    def shuffle(order: list) -> None:
        order[:] = [order[i] for i in block_order(len(order), seed, calls[0])]
        calls[0] += 1

    return _backends.random_state(shuffle)


class Stream:
    """X (and y) on the host, streamed to ``model``'s device (see the module docstring). ``shape`` is X's;
    :meth:`batches` is what the training loop iterates over."""

    def __init__(self, model: Any, source: Any, y: Any, seed: int, batch_size: int):
        if source.ndim != 2:
            raise ValueError(f"X must be 2-D (samples, features), got shape {source.shape}")
        self.model, self.X, self.seed = model, source, seed
        self.shape = source.shape
        n = self.shape[0]
        if n == 0:
            raise ValueError("X is empty: fit needs at least one sample")
        model.build(self.shape[1])
        self.y = stream_source(y) or _InMemory(y)
        if self.y.shape[0] != n:
            raise ValueError(f"X and y have different lengths: {n} samples in X, {self.y.shape[0]} in y")
        self.blocks = source.blocks
        if model.output_auto and self._continuous():
            model.set_output("identity")
        self.batch_size = batch_size
        # (0, k) targets: what the loop reads of Y besides the batches (its width)
        self.target_like = model.targets(self.y.read(0, 1))[:0, ...]

    def _continuous(self) -> bool:
        from ..nn.inputs import is_continuous

        return any(is_continuous(self.model, self.y.read(a, b)) for a, b in self.y_blocks())

    def y_blocks(self) -> list[tuple[int, int]]:
        return getattr(self.y, "blocks", None) or [(0, self.y.shape[0])]

    def _window(self, b: int, counter: int) -> tuple[Array, Array]:
        """Block b on the device, its rows permuted (key: seed, "window", counter · blocks + b)."""
        model, xp = self.model, self.model.xp
        a, z = self.blocks[b]
        Xw = model.as_input(self.X.read(a, z))
        if not bool(xp.all(xp.isfinite(Xw))):
            raise ValueError(f"X contains NaN or infinity (in rows {a}..{z - 1}): clean or impute the data before "
                             f"fitting")
        Yw = model.targets(self.y.read(a, z))
        perm = xrandom.permutation(xp, z - a, self.seed, xrandom.STREAMS["window"], counter * len(self.blocks) + b,
                                   model.backend.device)
        return xp.take(Xw, perm, axis=0), xp.take(Yw, perm, axis=0)

    def batches(self, counter: int, first_step: int, part: Callable[[int, int], tuple[int, int]] | None
                ) -> Iterator[tuple[int, Array, Array]]:
        """(first row in the epoch's order, X rows, Y rows) per batch of epoch ``counter`` from step
        ``first_step`` on; ``part(start, stop)``: this rank's (lo, hi) of each batch (data parallel)."""
        xp, bs = self.model.xp, self.batch_size
        pending: list[tuple[Array, Array]] = []
        have, start, step = 0, 0, 0

        def emit(xs: list[Array], ys: list[Array]) -> tuple[int, Array, Array]:
            xb = xs[0] if len(xs) == 1 else xp.concat(xs, axis=0)
            yb = ys[0] if len(ys) == 1 else xp.concat(ys, axis=0)
            if part is not None:
                lo, hi = part(start, start + xb.shape[0])
                xb, yb = xb[lo:hi, ...], yb[lo:hi, ...]
            return start, xb, yb

        for b in block_order(len(self.blocks), self.seed, counter):  # (a resumed epoch reads its first blocks again)
            Xw, Yw = self._window(b, counter)
            m, j = Xw.shape[0], 0
            while j < m:
                take = min(bs - have, m - j)
                pending.append((Xw[j:j + take, ...], Yw[j:j + take, ...]))
                have, j = have + take, j + take
                if have == bs:
                    if step >= first_step:
                        yield emit([p[0] for p in pending], [p[1] for p in pending])
                    start, step, have, pending = start + bs, step + 1, 0, []
        if pending:
            yield emit([p[0] for p in pending], [p[1] for p in pending])

class _InMemory:
    """y held in memory (any array-like with rows), read like a block source."""

    def __init__(self, y: Any):
        self.A = y
        self.shape = tuple(getattr(y, "shape", (len(y),)))

    def read(self, a: int, b: int) -> Any:
        return self.A[a:b]
