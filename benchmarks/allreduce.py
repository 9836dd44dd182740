"""The communication cost of a data-parallel step: ``mpiexec -n N python benchmarks/allreduce.py [--json PATH]``.

For each network it trains ``xpnet.fit(..., comm=MPI.COMM_WORLD)`` for a few epochs and times, on every rank,
the step's one allreduce (``comm.allreduce_`` of the ``[gradient | loss | hits | signals]`` buffer, wrapped
with a timer: in training it includes waiting for the slower rank) and the whole step, then the same
allreduce alone after a barrier (the communication cost itself); rank 0 prints the medians, the bytes
reduced per step, the achieved algorithm bandwidth (bytes / isolated time) and the same network's step
time on one process without ``comm``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import xpnet  # noqa: E402

NETWORKS = {  # name: (layer widths, batch size, rows)
    "small": ([2, 64, 32, 1], 32, 2048),
    "medium": ([64, 128, 64, 10], 64, 2048),
    "large": ([100, 512, 256, 10], 256, 4096),
    "1M": ([256, 1024, 768, 10], 256, 2048),
    "4M": ([512, 2048, 1536, 10], 256, 1024),
}


class Timed:
    """Wraps a communicator's ``allreduce_`` with a timer (everything else passes through)."""

    def __init__(self, comm):
        self.comm, self.times = comm, []

    def __getattr__(self, name):
        return getattr(self.comm, name)

    def allreduce_(self, buf) -> None:
        t = time.perf_counter()
        self.comm.allreduce_(buf)
        self.times.append(time.perf_counter() - t)


class StepTimes:
    def __init__(self):
        self.marks = []

    def on_epoch_begin(self, epoch):
        self.marks.append(time.perf_counter())


def isolated(comm, net, repeats: int = 50) -> float:
    """Median seconds of the step's allreduce alone (same buffer, ranks lined up by a barrier first)."""
    buf = net.xp.zeros((net.n_params + 4,), dtype=net.dtype)
    times = []
    for _ in range(repeats):
        comm.barrier()
        t = time.perf_counter()
        comm.allreduce_(buf)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure(name: str, widths: list[int], batch: int, rows: int, comm, epochs: int) -> dict:
    import backends

    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, widths[0])).astype(np.float32)
    y = rng.integers(0, widths[-1] if widths[-1] > 1 else 2, size=rows)
    steps = -(-rows // batch)
    out = {"network": f"{name} {widths}".replace(" ", ""),
           "batch": batch, "steps_per_epoch": steps}
    if comm is not None:
        timed = Timed(backends.communicator(comm))
        net = xpnet.MLP(widths, seed=0)
        t = time.perf_counter()
        xpnet.fit(net, X, y, epochs=epochs, batch_size=batch, comm=timed)
        total = time.perf_counter() - t
        warm = timed.times[steps:]  # the first epoch warms up
        out.update(params=net.n_params, bytes=(net.n_params + 4) * 4, ranks=timed.size,
                   allreduce_ms=1e3 * statistics.median(warm), step_ms=1e3 * total / (epochs * steps),
                   path=timed.comm.path)
        out["isolated_ms"] = 1e3 * isolated(timed.comm, net)
        out["algbw_GBps"] = out["bytes"] / (out["isolated_ms"] * 1e-3) / 1e9
    net = xpnet.MLP(widths, seed=0)
    t = time.perf_counter()
    xpnet.fit(net, X, y, epochs=epochs, batch_size=batch)
    out["single_step_ms"] = 1e3 * (time.perf_counter() - t) / (epochs * steps)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--networks", default=",".join(NETWORKS))
    p.add_argument("--json")
    args = p.parse_args()
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rows = []
    for name in args.networks.split(","):
        widths, batch, n = NETWORKS[name]
        rows.append(measure(name, widths, batch, n, comm, args.epochs))
    if comm.Get_rank() != 0:
        return
    print(f"{'network':<28} {'params':>9} {'bytes/step':>11} {'allreduce':>10} {'GB/s':>6} {'in training':>12} "
          f"{'step (N ranks)':>15} {'step (1 proc)':>14}")
    for r in rows:
        print(f"{r['network']:<28} {r['params']:>9,} {r['bytes']:>11,} {r['isolated_ms']:>8.3f}ms "
              f"{r['algbw_GBps']:>6.2f} {r['allreduce_ms']:>10.3f}ms {r['step_ms']:>13.3f}ms "
              f"{r['single_step_ms']:>12.3f}ms")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"ranks": comm.Get_size(), "mpi": MPI.Get_library_version().split("\n")[0], "rows": rows}, f,
                      indent=1)


if __name__ == "__main__":
    main()
