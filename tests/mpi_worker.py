"""What the MPI tests run on every rank: ``mpiexec -n N python tests/mpi_worker.py CASES OUT``.

Each case trains with ``comm=MPI.COMM_WORLD`` and writes the rank's results to ``OUT/CASE-rank{r}.npz``;
``tests/test_mpi.py`` runs the same case functions in its own process without ``comm`` (the
single-process reference) and compares. Cases ``raise`` and ``hang`` fail on purpose.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import numpy as np  # noqa: E402

import xpnet  # noqa: E402

BATCH = 16


def data(n: int = 210, features: int = 5, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A fixed classification problem (210 rows: 178 train + 32 validation; 178 = 11 batches of 16 + 2)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, features))
    w = rng.normal(size=(features, classes))
    y = np.argmax(X @ w + 0.5 * rng.normal(size=(n, classes)), axis=1)
    return X, y


def model() -> xpnet.Network:
    return xpnet.MLP([5, 16, 8, 3], dropout=0.2, seed=3, dtype="float64")


def record(history: dict, net: xpnet.Network, **extra) -> dict:
    out = {k: np.asarray([np.nan if v is None else v for v in history[k]], dtype=np.float64)
           for k in ("step_loss", "loss", "val_loss", "accuracy", "val_accuracy")}
    out["params"] = net.backend.to_numpy(net.params).astype(np.float64)
    out["meta"] = json.dumps({"epochs": len(history["epoch"]), "best_epoch": history["best_epoch"],
                              "stopped_early": bool(history["stopped_early"]), "counters": net.counters, **extra})
    return out


def case_main(comm, out: str) -> dict:
    """Dropout, L2, clipping, validation split and early stopping; uneven and empty shards."""
    X, y = data()
    net = model()
    h = xpnet.fit(net, X, y, optimizer=xpnet.Adam(lr=0.05), l2=1e-3, clip_norm=1.0, epochs=40, batch_size=BATCH,
                  validation_split=0.15, early_stopping=True, patience=3, min_delta=1e-3, comm=comm)
    return record(h, net)


def case_checkpoint(comm, out: str) -> dict:
    """4 epochs with a checkpoint (rank 0 writes it), then resumed to 8 under the same communicator."""
    X, y = data()
    path = os.path.join(out, "ck.npz")
    net = model()
    xpnet.fit(net, X, y, optimizer=xpnet.Adam(lr=0.02), l2=1e-3, epochs=4, batch_size=BATCH, validation_split=0.15,
              checkpoint=path, comm=comm)
    net = model()
    h = xpnet.fit(net, X, y, epochs=8, batch_size=BATCH, l2=1e-3, validation_split=0.15, resume=path, comm=comm)
    return record(h, net)


def case_estimator(comm, out: str) -> dict:
    X, y = data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = xpnet.XPNetClassifier((12,), random_state=0, dtype="float64", batch_size=BATCH, max_iter=6,
                                    early_stopping=True, alpha=1e-3, dropout=0.1, comm=comm).fit(X, y)
    return {"params": est.model_.backend.to_numpy(est.model_.params).astype(np.float64),
            "loss": np.asarray(est.loss_curve_), "meta": json.dumps({"n_iter": est.n_iter_})}


class _SignalAt:
    """On rank ``rank``: SIGTERM to itself when epoch ``epoch`` begins."""

    def __init__(self, comm, rank: int, epoch: int):
        self.me = comm is not None and comm.Get_rank() == rank
        self.epoch = epoch

    def on_epoch_begin(self, epoch: int) -> None:
        if self.me and epoch == self.epoch:
            os.kill(os.getpid(), signal.SIGTERM)


def case_signal(comm, out: str) -> dict:
    """SIGTERM on rank 1 only: every rank stops after the same step, rank 0 writes the one checkpoint."""
    import xpnet.train.checkpointing as cp

    writes = []
    original = cp.save
    cp.save = lambda path, *a, **k: (writes.append(path), original(path, *a, **k))
    X, y = data()
    net = model()
    try:
        xpnet.fit(net, X, y, optimizer=xpnet.Adam(lr=0.02), epochs=6, batch_size=BATCH,
                  checkpoint=os.path.join(out, "sig-{epoch}.npz"), callbacks=[_SignalAt(comm, 1, 3)], comm=comm)
        stopped = None
    except xpnet.checkpoint.Interrupted as exc:
        stopped = {"epoch": exc.epoch, "step_in_epoch": exc.step_in_epoch, "path": exc.path, "signum": exc.signum}
    finally:
        cp.save = original
    return {"params": net.backend.to_numpy(net.params).astype(np.float64),
            "meta": json.dumps({"stopped": stopped, "writes": writes})}


class _Fail:
    def __init__(self, comm, how: str):
        self.me, self.how = comm.Get_rank() == 1, how

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if epoch == 2 and not self.me:
            print("rank 0 trained epoch 2", flush=True)  # then waits for rank 1 in the stop agreement
        if self.me and epoch == 2:
            if self.how == "raise":
                raise RuntimeError("boom on purpose")
            time.sleep(60)


def case_raise(comm, out: str) -> dict:
    X, y = data()
    xpnet.fit(model(), X, y, epochs=50, batch_size=BATCH, callbacks=[_Fail(comm, "raise")], comm=comm)
    return {}


def case_hang(comm, out: str) -> dict:
    X, y = data()
    xpnet.fit(model(), X, y, epochs=50, batch_size=BATCH, callbacks=[_Fail(comm, "hang")], comm=comm)
    return {}


def case_setup(comm, out: str) -> dict:
    """Rank 1 alone gives fit a bad argument: every rank raises instead of waiting."""
    X, y = data()
    try:
        xpnet.fit(model(), X, y, epochs=0 if comm.Get_rank() == 1 else 3, batch_size=BATCH, comm=comm)
    except Exception as exc:  # noqa: BLE001 - recorded for the test
        return {"meta": json.dumps({"error": f"{type(exc).__name__}: {exc}"})}
    return {"meta": json.dumps({"error": None})}


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main() -> None:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    cases, out = sys.argv[1].split(","), sys.argv[2]
    for case in cases:
        result = CASES[case](comm, out)
        np.savez(os.path.join(out, f"{case}-rank{comm.Get_rank()}.npz"), **result)


if __name__ == "__main__":
    main()
