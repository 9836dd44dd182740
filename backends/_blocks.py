"""Data read block by block from where it lives (a NumPy memmap, a Dask array): xpnet streams it to the
device without ever holding all of it (``xpnet.fit`` with such an X; see ``xpnet/train/stream.py``).

``block_source(A)`` returns a :class:`BlockSource` for a ``numpy.memmap`` (windows of about
:data:`WINDOW_BYTES` of rows) or a Dask array (its chunks along the rows), else None. ``read(a, b)``
is a host NumPy copy of rows a..b-1; for a memmap the file pages it touched are dropped from this
process's memory afterwards (``madvise(MADV_DONTNEED)``: they stay in the page cache), so its
resident size stays bounded however large the file is.

``random_state(shuffle)``: a ``numpy.random.RandomState`` whose ``shuffle`` is the given function,
for libraries that take a RandomState to order blocks (``dask_ml.wrappers.Incremental``): xpnet hands
it its counter-based block order.
"""
from __future__ import annotations

import mmap
from typing import Any, Callable

import numpy as np

__all__ = ["BlockSource", "block_source", "is_dask", "random_state", "WINDOW_BYTES"]

WINDOW_BYTES = 16 << 20  # a memmap window: rows of about this many bytes


def is_dask(A: Any) -> bool:
    """Whether ``A`` is a Dask collection (array) — not something an array namespace can compute on in place."""
    return type(A).__module__.split(".")[0] == "dask" and hasattr(A, "chunks")


class BlockSource:
    """Rows of a 1-d or 2-d host-side array, read a block at a time."""

    def __init__(self, A: Any, blocks: list[tuple[int, int]], kind: str):
        self.A, self.blocks, self.kind = A, blocks, kind
        self.shape, self.dtype, self.ndim = tuple(int(s) for s in A.shape), np.dtype(A.dtype), A.ndim

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start .. stop - 1`` as a NumPy array (a copy)."""
        if self.kind == "dask":
            return np.asarray(self.A[start:stop].compute())
        out = np.array(self.A[start:stop])
        self._release(start, stop)
        return out

    def _release(self, start: int, stop: int) -> None:
        """Drop the memmap's pages of these rows from this process (shared or read-only maps only: dropping a
        copy-on-write map's pages would lose its private changes)."""
        m = getattr(self.A, "_mmap", None)
        if m is None or getattr(self.A, "mode", "r") == "c" or not hasattr(m, "madvise"):
            return
        row = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        base = int(getattr(self.A, "offset", 0)) % mmap.ALLOCATIONGRANULARITY  # the map starts at a page boundary
        a = (base + start * row) // mmap.PAGESIZE * mmap.PAGESIZE
        b = min(len(m), base + stop * row)
        if b > a:
            try:
                m.madvise(mmap.MADV_DONTNEED, a, b - a)
            except (OSError, ValueError):
                pass

    def describe(self) -> str:
        return f"{self.kind} {self.shape} {self.dtype} in {len(self.blocks)} blocks"


def block_source(A: Any, min_rows: int = 1) -> BlockSource | None:
    """A :class:`BlockSource` for a memmap (windows of at least ``min_rows`` rows) or a Dask array; else None."""
    if isinstance(A, np.memmap):
        if A.ndim not in (1, 2):
            return None
        n = int(A.shape[0])
        row = max(1, int(np.prod(A.shape[1:], dtype=np.int64)) * A.dtype.itemsize)
        step = max(min_rows, WINDOW_BYTES // row, 1)
        return BlockSource(A, [(a, min(a + step, n)) for a in range(0, n, step)], "memmap")
    if is_dask(A):
        if A.ndim not in (1, 2) or any(np.isnan(c) for c in A.chunks[0]):
            raise ValueError("a Dask array with unknown chunk sizes cannot be streamed: call X.compute_chunk_sizes() "
                             "first")
        bounds, a = [], 0
        for c in A.chunks[0]:
            bounds.append((a, a + int(c)))
            a += int(c)
        return BlockSource(A, [b for b in bounds if b[1] > b[0]], "dask")
    return None


def random_state(shuffle: Callable[[list], None]) -> np.random.RandomState:
    """A RandomState whose ``shuffle(x)`` is ``shuffle(x)`` (in place); its other draws are NumPy's."""
    class _Shuffling(np.random.RandomState):
        def shuffle(self, x: Any) -> None:  # type: ignore[override]
            shuffle(x)

    return _Shuffling(0)
