"""Data-parallel training without MPI: the sharding maths, the dropout rows and the agreement rules, with
N ranks simulated as threads of this process (``tests/distributed_sim.py``). ``tests/test_mpi.py`` runs
the same cases under ``mpiexec``; both compare with single-process ``fit`` on the same global batch."""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

import backends
import xpnet
from tests import mpi_worker as cases
from tests.distributed_sim import ThreadGroup, run_ranks
from xpnet import random as xr
from xpnet.nn import BatchNorm1d, Dense, Dropout
from xpnet.train.distributed import DistributedError, share

TOL = 1e-12


def _close(a: np.ndarray, b: np.ndarray, what: str) -> None:
    assert a.shape == b.shape, what
    assert np.allclose(a, b, rtol=TOL, atol=TOL, equal_nan=True), f"{what}: max |diff| {np.nanmax(np.abs(a - b))}"


# ------------------------------------------------------------------ the sharding maths
@pytest.mark.parametrize("size", [1, 2, 3, 4, 7])
def test_share_splits_a_batch_into_contiguous_parts(size: int) -> None:
    for rows in range(0, 40):
        parts = [share(rows, size, r) for r in range(size)]
        assert parts[0][0] == 0 and parts[-1][1] == rows
        assert all(parts[r][1] == parts[r + 1][0] for r in range(size - 1))  # contiguous, in rank order
        sizes = [hi - lo for lo, hi in parts]
        assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)  # first ranks take the extra rows


@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (16, 5), (33, 64)])
def test_dropout_keep_from_an_offset_is_the_slice_of_the_whole_mask(backend, shape: tuple[int, int]) -> None:
    xp, total = backend.xp, math.prod(shape)
    whole = backends.to_numpy(xr.dropout_keep(xp, shape, 0.3, 5, xr.STREAMS["dropout"], 9, backend.device))
    flat = whole.reshape(-1)
    for lo, hi in [(0, total), (0, 1), (total - 1, total), (total // 3, total // 2), ((total + 1) // 2 - 1, total)]:
        part = xr.dropout_keep(xp, (hi - lo,), 0.3, 5, xr.STREAMS["dropout"], 9, backend.device, offset=lo, total=total)
        assert np.array_equal(backends.to_numpy(part), flat[lo:hi]), (lo, hi)
    with pytest.raises(ValueError, match="outside"):
        xr.dropout_keep(xp, (3,), 0.3, 5, 1, 9, backend.device, offset=total - 1, total=total)


@pytest.mark.parametrize("size", [2, 3, 5])
def test_each_rank_draws_its_rows_of_the_global_batch_mask(backend, size: int) -> None:
    """Dropout.rows = (first, total): the layer's mask is those rows of the whole batch's mask (also through a
    fast path, where the backend has one)."""
    layer_net = xpnet.Network([Dense(6, 8), Dropout(0.4), Dense(8, 1)], seed=2, backend=backend, dtype="float32")
    drop = layer_net.dropout_layers[0]
    batch = 11
    whole = backends.to_numpy(drop.mask((batch, 8), layer_net.dtype, 4))
    for rank in range(size):
        lo, hi = share(batch, size, rank)
        layer_net.hold_rows((lo, batch))
        mine = backends.to_numpy(drop.mask((hi - lo, 8), layer_net.dtype, 4))
        assert np.array_equal(mine, whole[lo:hi]), rank
    layer_net.hold_rows(None)
    assert np.array_equal(backends.to_numpy(drop.mask((batch, 8), layer_net.dtype, 4)), whole)


def test_a_rank_without_rows_advances_the_dropout_counters() -> None:
    net = xpnet.Network([Dense(3, 4), Dropout(0.5), Dropout(0.0), Dense(4, 1)], seed=0)
    net.skip_forward()
    assert net.counters == [1, 0]  # like a training forward: p = 0 draws nothing


# ------------------------------------------------------------------ N ranks as threads
def _ranks(n: int, case) -> list[dict]:
    return run_ranks(n, lambda comm: case(comm, None))


@pytest.fixture(scope="module")
def reference() -> dict:
    return cases.case_main(None, None)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_ranks_compute_what_one_process_computes(reference: dict, n: int) -> None:
    """Dropout, L2, clipping, a validation split and early stopping; 178 training rows in batches of 16 leave a
    last batch of 2 rows (empty shares on 3 and 4 ranks) and uneven shares elsewhere (16 = 6 + 5 + 5)."""
    results = _ranks(n, cases.case_main)
    for r, res in enumerate(results):
        assert np.array_equal(res["params"], results[0]["params"]), f"rank {r}'s parameters differ from rank 0's"
        assert json.loads(res["meta"]) == json.loads(reference["meta"])  # epochs, best epoch, stop, dropout counters
    for key in ("step_loss", "loss", "val_loss", "accuracy", "val_accuracy", "params"):
        if n == 1:  # one rank: the single-process arithmetic, bit for bit
            assert np.array_equal(results[0][key], reference[key], equal_nan=True), key
        else:
            _close(results[0][key], reference[key], key)
    assert json.loads(reference["meta"])["stopped_early"]  # the case exercises the agreed early stop


def test_one_allreduce_per_step() -> None:
    group_steps = []

    def train(comm):
        X, y = cases.data()
        h = xpnet.fit(cases.model(), X, y, epochs=2, batch_size=cases.BATCH, comm=comm)
        group_steps.append((comm.group, len(h["step_loss"])))

    run_ranks(2, train)
    group, steps = group_steps[0]
    assert group.reduces == steps == 2 * math.ceil(210 / cases.BATCH)


@pytest.mark.parametrize("n", [2, 3])
def test_estimators_under_comm_match_one_process(n: int) -> None:
    ref = cases.case_estimator(None, None)
    results = _ranks(n, cases.case_estimator)
    assert all(np.array_equal(r["params"], results[0]["params"]) for r in results)
    _close(results[0]["params"], ref["params"], "params")
    _close(results[0]["loss"], ref["loss"], "loss_curve_")


def test_lbfgs_estimator_reduces_every_closure_evaluation() -> None:
    X, y = cases.data()

    def train(comm=None):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = xpnet.XPNetClassifier((8,), solver="lbfgs", max_iter=20, random_state=0, dtype="float64", alpha=1e-3,
                                        comm=comm).fit(X, y)
        return est.model_.backend.to_numpy(est.model_.params), est.loss_

    ref = train()
    results = run_ranks(2, train)
    assert np.array_equal(results[0][0], results[1][0])
    assert np.allclose(results[0][0], ref[0], rtol=1e-9, atol=1e-11) and abs(results[0][1] - ref[1]) < 1e-12


def test_checkpoint_on_rank_0_resumes_under_comm_and_on_one_process(tmp_path) -> None:
    results = run_ranks(2, lambda comm: cases.case_checkpoint(comm, str(tmp_path)))
    assert np.array_equal(results[0]["params"], results[1]["params"])
    X, y = cases.data()
    net = cases.model()
    h = xpnet.fit(net, X, y, epochs=8, batch_size=cases.BATCH, l2=1e-3, validation_split=0.15,
                  resume=str(tmp_path / "ck.npz"))
    _close(results[0]["params"], net.backend.to_numpy(net.params), "resumed on one process")
    single = cases.case_checkpoint(None, str(tmp_path))  # the same story on one process throughout
    for key in ("step_loss", "loss", "val_loss", "params"):
        _close(results[0][key], single[key], key)
    assert len(h["epoch"]) == 8


def test_a_failed_set_up_on_one_rank_fails_every_rank() -> None:
    outcomes = run_ranks(2, _setup)
    assert outcomes[1].startswith("ValueError: epochs")
    assert outcomes[0].startswith("DistributedError: xpnet's set-up failed on rank 1 of 2: ValueError: epochs")


def _setup(comm) -> str:
    X, y = cases.data()
    try:
        xpnet.fit(cases.model(), X, y, epochs=0 if comm.rank == 1 else 3, batch_size=16, comm=comm)
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {exc}"
    return "trained"


def test_ranks_that_drift_apart_stop_loudly() -> None:
    class Nudge:
        def __init__(self, comm):
            self.me = comm.rank == 1

        def on_train_begin(self, info):
            self.model = info["model"]

        def on_epoch_begin(self, epoch):
            if self.me and epoch == 2:
                self.model.params[0] += 1e-9

    def train(comm):
        X, y = cases.data()
        try:
            xpnet.fit(cases.model(), X, y, epochs=3, batch_size=16, callbacks=[Nudge(comm)], comm=comm)
        except DistributedError as exc:
            return str(exc)
        return None

    messages = run_ranks(2, train)
    assert messages[0] == messages[1] and "drifted apart after epoch 2" in messages[0]


def test_an_error_on_one_rank_aborts_the_group() -> None:
    class Boom:
        def __init__(self, comm):
            self.me = comm.rank == 1

        def on_epoch_end(self, epoch, logs):
            if self.me:
                raise KeyError("only here")

    group_msgs = []

    def train(comm):
        X, y = cases.data()
        group_msgs.append(comm.group)
        xpnet.fit(cases.model(), X, y, epochs=3, batch_size=16, callbacks=[Boom(comm)], comm=comm)

    with pytest.raises(RuntimeError, match="rank 1: KeyError: 'only here'"):
        run_ranks(2, train)
    assert "rank 1: KeyError" in group_msgs[0].aborted


def test_batchnorm_and_weighted_estimators_are_refused_on_several_ranks() -> None:
    def bn(comm):
        net = xpnet.Network([Dense(5, 8), BatchNorm1d(8), Dense(8, 3)], seed=0)
        with pytest.raises(ValueError, match="BatchNorm1d"):
            xpnet.fit(net, *cases.data(), epochs=1, comm=comm)

    run_ranks(2, bn)

    def weighted(comm):
        X, y = cases.data()
        with pytest.raises(ValueError, match="sample_weight"):
            xpnet.XPNetClassifier((4,), max_iter=1, comm=comm).fit(X, y, sample_weight=np.ones(len(y)))

    run_ranks(2, weighted)


def test_comm_must_be_a_communicator() -> None:
    with pytest.raises(ValueError, match="mpi4py communicator"):
        xpnet.fit(cases.model(), *cases.data(), epochs=1, comm=42)


def test_the_thread_group_sums_in_rank_order() -> None:
    group = ThreadGroup(3)
    assert group.size == 3
    out = run_ranks(3, lambda comm: (lambda b: (comm.allreduce_(b), b)[1])(np.full(4, 0.1 * (comm.rank + 1))))
    assert all(np.array_equal(o, out[0]) for o in out) and np.allclose(out[0], 0.6)


def test_the_masks_of_a_training_step_are_the_single_process_masks() -> None:
    """Record every dropout mask of two epochs on 3 ranks: stacked in rank order they are the masks of one process."""
    def masks(comm=None):
        net = cases.model()
        drop = net.dropout_layers[0]
        seen = []
        original = drop.mask
        drop.mask = lambda shape, dtype, counter: (lambda m: (seen.append((counter, m.copy())), m)[1])(
            original(shape, dtype, counter))
        xpnet.fit(net, *cases.data(), epochs=2, batch_size=cases.BATCH, comm=comm)
        return seen

    ref = masks()
    per_rank = [dict(seen) for seen in run_ranks(3, masks)]  # a rank without rows in a step draws no mask then
    assert len(ref) == 2 * math.ceil(210 / cases.BATCH) and sum(map(len, per_rank)) == 3 * len(ref) - 2
    for counter, whole in ref:
        parts = [r[counter] for r in per_rank if counter in r]
        assert np.array_equal(np.concatenate(parts), whole), counter


def test_a_streamed_x_trains_data_parallel_like_one_process(tmp_path, monkeypatch) -> None:
    """A memmap streamed block by block: each rank takes its share of every global batch of the stream."""
    monkeypatch.setattr("backends._blocks.WINDOW_BYTES", 50 * 5 * 8)  # 50-row blocks: batches span two blocks
    X, y = cases.data()
    X.tofile(tmp_path / "x.dat")

    def train(comm=None):
        net = cases.model()
        mm = np.memmap(tmp_path / "x.dat", dtype=X.dtype, mode="r", shape=X.shape)
        h = xpnet.fit(net, mm, y, epochs=3, batch_size=cases.BATCH, l2=1e-3, comm=comm)
        assert all(layer.rows is None for layer in net.dropout_layers)  # whole batches again after training
        return np.asarray(h["step_loss"]), net.backend.to_numpy(net.params)

    ref = train()
    results = run_ranks(3, train)
    assert np.array_equal(results[0][1], results[2][1])
    _close(results[0][0], ref[0], "step losses")
    _close(results[0][1], ref[1], "params")
