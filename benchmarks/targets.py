"""Issue 16's start-up and random-number targets, measured side by side in one run.

    python benchmarks/targets.py --json benchmarks/results/targets-DATE.json

- start-up: ``python scripts/train.py --dataset iris --epochs 1`` against a bare
  ``python -c "import numpy"``, fresh processes alternating, median of ``--repeats`` (5);
  the run draws its figures in the background (its default), so the process ends after the summary.
- random numbers (NumPy backend, in this process): a float32 normal draw of 2**20 values against
  ``numpy.random.default_rng().standard_normal``; a 256x512 dropout mask against
  ``rng.random((256, 512), dtype=float32) >= p``; the initialization of ``xpnet.MLP([784, 4096, 4096, 10])``.
  Each the median of repeated calls.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def _seconds(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def startup(repeats: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XPNET_FIGURES"}
    bare, train = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats + 1):  # the first pair warms the file cache and is not counted
            b = _seconds([sys.executable, "-c", "import numpy"], env)
            t = _seconds([sys.executable, "scripts/train.py", "--dataset", "iris", "--epochs", "1", "--quiet",
                          "--out", os.path.join(tmp, f"run{r}")], env)
            if r:
                bare.append(b)
                train.append(t)
        time.sleep(3)  # let the background figure writers finish before the folder goes
    return {"bare_numpy_s": statistics.median(bare), "train_iris_s": statistics.median(train),
            "difference_s": statistics.median(train) - statistics.median(bare), "target_difference_s": 1.5,
            "runs_bare": bare, "runs_train": train}


def _median_call(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def random_numbers() -> dict:
    import numpy as np

    import backends
    import xpnet
    from xpnet import random as xr

    xp = backends.get("numpy").xp
    rng = np.random.default_rng(0)
    normal = _median_call(lambda: xr.normal(xp, (2**20,), 0, 1, 2), 15)
    np_normal = _median_call(lambda: rng.standard_normal(2**20, dtype=np.float32), 15)
    mask = _median_call(lambda: xr.dropout_keep(xp, (256, 512), 0.3, 0, 1, 3), 200)
    np_mask = _median_call(lambda: rng.random((256, 512), dtype=np.float32) >= 0.3, 200)
    init = _median_call(lambda: xpnet.MLP([784, 4096, 4096, 10]), 3)
    return {"normal_2e20_s": normal, "numpy_normal_2e20_s": np_normal, "normal_ratio": normal / np_normal,
            "normal_target_ratio": 3.0, "mask_256x512_s": mask, "numpy_mask_256x512_s": np_mask,
            "mask_ratio": mask / np_mask, "mask_target_ratio": 2.0, "mlp_784_4096_4096_10_init_s": init,
            "init_target_s": 1.0}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args()
    result = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "startup": startup(args.repeats),
              "random_numbers": random_numbers()}
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
