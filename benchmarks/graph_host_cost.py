"""The host's share of a training step replayed from a CUDA graph, measured on a CPU.

    python benchmarks/graph_host_cost.py

NumPy is made to "record" each step and replay it as a no-op (and the first-replay check is skipped), so
what is timed is everything xpnet does on the host around a replay: the per-epoch tables, the permutation,
the replay call, the step bookkeeping and the epoch's one fetch. Beside it, the same run with eager steps.
The task is bench.py's small one (moons-sized data, [2, 64, 32, 1], batch 32, 200 epochs: 5,000 steps).
The trained numbers of the no-op run are meaningless; only its time is.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import backends  # noqa: E402
import xpnet  # noqa: E402
from xpnet.train import graphed  # noqa: E402


def run(backend, X, y) -> float:
    model = xpnet.MLP([2, 64, 32, 1], backend=backend, seed=0)
    start = time.perf_counter()
    xpnet.fit(model, X, y, optimizer=xpnet.Adam(1e-3), epochs=200, batch_size=32, train_accuracy=False)
    return time.perf_counter() - start


def main() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(800, 2)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    backend = backends.get("numpy")
    eager = min(run(backend, X, y) for _ in range(3))
    kind = type(backend)

    def record(self, step):
        step()
        return lambda: None

    kind.can_capture, kind.capture = property(lambda self: True), record
    graphed.GraphedSteps._checked = lambda self, size, replay: replay
    replayed = min(run(backend, X, y) for _ in range(3))
    steps = 200 * 25
    print(f"eager steps      {eager:.3f} s  {eager / steps * 1e6:6.1f} us/step")
    print(f"no-op replays    {replayed:.3f} s  {replayed / steps * 1e6:6.1f} us/step  (the host's share)")


if __name__ == "__main__":
    main()
