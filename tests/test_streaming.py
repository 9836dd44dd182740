"""Data beyond memory: ``xpnet.fit`` streams a NumPy memmap or a Dask array block by block (bounded memory,
the documented block-and-window shuffle), and the estimators under ``dask_ml.wrappers.Incremental`` on a
two-worker ``distributed.LocalCluster``. The Dask tests skip where dask, distributed or dask-ml are
missing, unless CI is set: then they fail (``.ci/run`` installs them)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import backends
import xpnet
from xpnet import random as xr
from xpnet.train.stream import block_order, block_random_state

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FEATURES = 4


def _need(module: str) -> None:
    try:
        __import__(module)
    except ImportError:
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"{module} is not installed (CI is set: .ci/run installs dask, distributed and dask-ml)")
        pytest.skip(f"{module} is not installed")


def _data(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, FEATURES))
    return X, (X[:, 0] + X[:, 1] ** 2 > 0.5).astype(np.int64)


def _memmap(tmp_path, X: np.ndarray) -> np.memmap:
    path = tmp_path / "x.dat"
    X.tofile(path)
    return np.memmap(path, dtype=X.dtype, mode="r", shape=X.shape)


def _net() -> xpnet.Network:
    return xpnet.MLP([FEATURES, 8, 1], dropout=0.1, seed=0, dtype="float64")


@pytest.fixture
def small_windows(monkeypatch):
    monkeypatch.setattr("backends._blocks.WINDOW_BYTES", 700 * FEATURES * 8)  # 700-row windows: 5 blocks of 3000


def test_a_memmap_trains_in_the_documented_order(tmp_path, small_windows) -> None:
    """Epoch e: blocks in block_order(blocks, seed, e), each block's rows permuted by (seed, "window", e·blocks + b),
    cut into batches: exactly an in-memory fit without shuffle on that order, epoch by epoch."""
    X, y = _data()
    streamed = _net()
    h = xpnet.fit(streamed, _memmap(tmp_path, X), y, epochs=3, batch_size=64, l2=1e-3, seed=5)
    blocks = backends.block_source(np.memmap(tmp_path / "x.dat", dtype=X.dtype, mode="r", shape=X.shape), 64).blocks
    assert len(blocks) == 5
    ref, opt, losses = _net(), xpnet.Adam(lr=1e-3), []
    for e in range(3):
        rows = np.concatenate([a + np.asarray(xr.permutation(np, b - a, 5, xr.STREAMS["window"], e * 5 + k))
                               for k in block_order(5, 5, e) for a, b in [blocks[k]]])
        losses += xpnet.fit(ref, X[rows], y[rows], epochs=1, batch_size=64, l2=1e-3, shuffle=False,
                            optimizer=opt)["step_loss"]
    assert np.array_equal(streamed.params, ref.params) and h["step_loss"] == losses


def test_a_dask_array_trains_like_the_memmap_of_its_blocks(tmp_path, small_windows) -> None:
    _need("dask")
    import dask.array as da

    X, y = _data()
    a, b = _net(), _net()
    ha = xpnet.fit(a, _memmap(tmp_path, X), y, epochs=2, batch_size=50, validation_data=(X[:100], y[:100]))
    hb = xpnet.fit(b, da.from_array(X, chunks=(700, FEATURES)), da.from_array(y, chunks=700), epochs=2,
                   batch_size=50, validation_data=(X[:100], y[:100]))
    assert np.array_equal(a.params, b.params) and ha["val_loss"] == hb["val_loss"]


def test_streamed_input_is_checked_as_it_arrives(tmp_path, small_windows) -> None:
    X, y = _data()
    with pytest.raises(ValueError, match="validation_split cannot split a streamed X"):
        xpnet.fit(_net(), _memmap(tmp_path, X), y, validation_split=0.1)
    X[2500, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinity \(in rows 2100\.\.2799\)"):
        xpnet.fit(_net(), _memmap(tmp_path, X), y, epochs=1)
    with pytest.raises(ValueError, match="different lengths"):
        xpnet.fit(_net(), _memmap(tmp_path, X), y[:10], epochs=1)


def test_a_dask_namespace_cannot_be_a_backend() -> None:
    with pytest.raises(backends.BackendUnavailable, match="no view semantics"):
        backends.get("dask")
    _need("dask")
    from array_api_compat import array_namespace
    import dask.array as da

    with pytest.raises(backends.BackendUnavailable, match="no view semantics"):
        xpnet.MLP([2, 1], backend=array_namespace(da.zeros(3)))


# Peak resident size: VmHWM (this process's high-water mark; ru_maxrss would carry the parent's across exec).
_RSS_SCRIPT = """
import re, sys
import numpy as np, xpnet
def hwm():
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) / 1024
rows, features = int(sys.argv[2]), int(sys.argv[3])
X = np.memmap(sys.argv[1], dtype=np.float64, mode="r", shape=(rows, features))
y = np.memmap(sys.argv[1] + ".y", dtype=np.int8, mode="r", shape=(rows,))
before = hwm()
h = xpnet.fit(xpnet.MLP([features, 16, 1], seed=0), X, y, epochs=1, batch_size=8192)
print(f'{{"before": {before}, "peak": {hwm()}, "accuracy": {h["accuracy"][0]}}}')
"""


def test_streaming_a_memmap_larger_than_the_memory_cap_stays_under_it(tmp_path) -> None:
    """A 256 MB memmap trains in a subprocess whose peak resident size stays under a 160 MB cap."""
    rows, features, cap_mb = 1_000_000, 32, 160
    path = tmp_path / "big.dat"
    rng = np.random.default_rng(0)
    w = rng.normal(size=features)
    with open(path, "wb") as f, open(f"{path}.y", "wb") as g:
        for _ in range(0, rows, 125_000):
            x = rng.random((125_000, features)) - 0.5
            f.write(x.tobytes())
            g.write((x @ w > 0).astype(np.int8).tobytes())
    assert os.path.getsize(path) > 1.5 * cap_mb * 2**20
    proc = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(path), str(rows), str(features)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["peak"] < cap_mb, out
    assert out["accuracy"] > 0.6  # it did learn from every block


def test_incremental_on_a_local_cluster_equals_sequential_partial_fit() -> None:
    """dask_ml's Incremental on two worker processes, block order from xpnet's counter-based generator: the same
    network as partial_fit over the same blocks in the same order here."""
    _need("dask")
    _need("distributed")
    _need("dask_ml")
    import dask.array as da
    from dask_ml.wrappers import Incremental
    from distributed import Client, LocalCluster

    X, y = _data(600)
    Xd, yd = da.from_array(X, chunks=(100, FEATURES)), da.from_array(y, chunks=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster):
            inc = Incremental(xpnet.XPNetRegressor(hidden_layer_sizes=(8,), random_state=0, batch_size=32),
                              random_state=block_random_state(7))
            inc.fit(Xd, yd.astype(np.float64))
            inc.partial_fit(Xd, yd.astype(np.float64))  # the second pass: the next block order
        ref = xpnet.XPNetRegressor(hidden_layer_sizes=(8,), random_state=0, batch_size=32)
        for call in range(2):
            for b in block_order(6, 7, call):
                ref.partial_fit(X[100 * b:100 * (b + 1)], y[100 * b:100 * (b + 1)].astype(np.float64))
    assert all(np.array_equal(a, b) for a, b in zip(inc.estimator_.coefs_, ref.coefs_))
    assert block_order(6, 7, 0) != block_order(6, 7, 1)
