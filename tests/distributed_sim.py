"""N data-parallel ranks as threads of one process: a communicator for the tests, no MPI needed.

``run_ranks(n, fn)`` calls ``fn(comm)`` in n threads (``comm.rank`` 0..n-1) and returns their results
in rank order (re-raising the first error). The collectives add in rank order, so every rank gets
bit-identical sums, as MPI's do.
"""
from __future__ import annotations

import threading
from typing import Any, Callable


class ThreadGroup:
    def __init__(self, size: int, timeout: float = 60.0):
        self.size, self.slots = size, [None] * size
        self.barrier = threading.Barrier(size, timeout=timeout)
        self.aborted: str | None = None
        self.reduces = 0


class ThreadComm:
    """The communicator interface of ``xpnet.train.distributed`` over a :class:`ThreadGroup`."""

    path, why = "threads", "the ranks are threads of one process"

    def __init__(self, group: ThreadGroup, rank: int):
        self.group, self.rank, self.size = group, rank, group.size
        self.local_rank = rank

    def _wait(self) -> None:
        try:
            self.group.barrier.wait()
        except threading.BrokenBarrierError:
            raise RuntimeError(f"rank {self.rank}: the group was aborted ({self.group.aborted})") from None

    def bind(self, backend: Any) -> "ThreadComm":
        self.backend = backend
        return self

    def allreduce_(self, buf: Any) -> None:
        g = self.group
        g.slots[self.rank] = buf * 1.0
        self._wait()
        total = g.slots[0] * 1.0
        for other in g.slots[1:]:
            total = total + other
        self._wait()
        buf[...] = total
        if self.rank == 0:
            g.reduces += 1

    def allgather(self, obj: Any) -> list:
        g = self.group
        g.slots[self.rank] = obj
        self._wait()
        out = list(g.slots)
        self._wait()
        return out

    def bcast(self, obj: Any, root: int = 0) -> Any:
        return self.allgather(obj)[root]

    def barrier(self) -> None:
        self._wait()

    def abort(self, message: str, code: int = 1) -> None:
        self.group.aborted = f"rank {self.rank}: {message}"
        self.group.barrier.abort()
        raise RuntimeError(self.group.aborted)

    def describe(self) -> str:
        return f"{self.size} threads"


def run_ranks(n: int, fn: Callable[[ThreadComm], Any], timeout: float = 120.0) -> list:
    """``[fn(comm of rank r) for r in range(n)]``, the ranks running concurrently in threads."""
    group = ThreadGroup(n)
    results: list = [None] * n
    errors: list = [None] * n

    def target(r: int) -> None:
        try:
            results[r] = fn(ThreadComm(group, r))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            errors[r] = exc
            group.barrier.abort()

    threads = [threading.Thread(target=target, args=(r,), daemon=True) for r in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    if any(t.is_alive() for t in threads):
        raise TimeoutError(f"ranks still running after {timeout} s")
    first = next((e for e in errors if e is not None and not isinstance(e, RuntimeError)), None) \
        or next((e for e in errors if e is not None), None)
    if first is not None:
        raise first
    return results
