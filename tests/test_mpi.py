"""Data-parallel training under a real ``mpiexec`` (mpi4py + MPICH): N ranks give what one process gives.

Each test launches ``mpiexec -n N python tests/mpi_worker.py CASES OUT`` (the mpiexec next to
``sys.executable``, as the ``mpich`` wheel installs it; ``OPENBLAS_NUM_THREADS=1``) and compares every
rank's results with the same case run here without ``comm``, in float64 within 1e-12; the ranks'
parameters must be bitwise equal. Skipped where mpi4py or that mpiexec is missing, unless CI is set:
then they fail (``.ci/run`` installs them).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import xpnet
from tests import mpi_worker as cases

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MPIEXEC = os.path.join(os.path.dirname(sys.executable), "mpiexec")
WORKER = os.path.join(ROOT, "tests", "mpi_worker.py")
TRAIN = os.path.join(ROOT, "scripts", "train.py")
TOL = 1e-12


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _missing() -> str | None:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install \"xpnet[distributed]\")"
    if not os.access(MPIEXEC, os.X_OK):
        return f"no mpiexec next to {sys.executable} (pip install mpich)"
    return None


@pytest.fixture(scope="module", autouse=True)
def _mpi_available() -> None:
    reason = _missing()
    if reason is not None:
        if _in_ci():
            pytest.fail(f"{reason} (CI is set: the MPI tests must run; .ci/run installs mpi4py and mpich)")
        pytest.skip(reason)


def _env(**extra: str) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    env.pop("XPNET_COMM_TIMEOUT", None)
    env.update(extra)
    return env


def mpirun(n: int, args: list[str], timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([MPIEXEC, "-n", str(n), sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, env=_env(**env), cwd=ROOT)


def run_cases(n: int, names: str, out) -> list[dict]:
    proc = mpirun(n, [WORKER, names, str(out)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [{case: dict(np.load(out / f"{case}-rank{r}.npz")) for case in names.split(",")} for r in range(n)]


def _meta(result: dict) -> dict:
    return json.loads(str(result["meta"]))


def _compare(ranks: list[dict], case: str, reference: dict, keys: tuple[str, ...], exact: bool = False) -> None:
    first = ranks[0][case]
    for r, res in enumerate(ranks):
        assert np.array_equal(res[case]["params"], first["params"]), f"{case}: rank {r}'s parameters differ"
    for key in keys:
        a, b = first[key], reference[key]
        assert a.shape == b.shape, (case, key, a.shape, b.shape)
        if exact:
            assert np.array_equal(a, b, equal_nan=True), (case, key)
        else:
            assert np.allclose(a, b, rtol=TOL, atol=TOL, equal_nan=True), (case, key, np.nanmax(np.abs(a - b)))


HISTORY = ("step_loss", "loss", "val_loss", "accuracy", "val_accuracy", "params")


@pytest.fixture(scope="module")
def main_reference() -> dict:
    return cases.case_main(None, None)


def test_two_ranks(tmp_path, main_reference: dict) -> None:
    """Step, epoch and validation losses and the final parameters equal one process's within 1e-12 (uneven shares
    of 16 rows, validation split, early stopping); a checkpoint written by rank 0 resumes under MPI and on one
    process; the estimators; a set-up error on one rank is raised on both."""
    ranks = run_cases(2, "main,checkpoint,estimator,setup", tmp_path)
    _compare(ranks, "main", main_reference, HISTORY)
    assert all(_meta(r["main"]) == _meta(main_reference) for r in ranks)  # epochs, early stop, dropout counters
    assert _meta(main_reference)["stopped_early"]

    os.makedirs(tmp_path / "single", exist_ok=True)
    single = cases.case_checkpoint(None, str(tmp_path / "single"))
    _compare(ranks, "checkpoint", single, ("step_loss", "loss", "val_loss", "params"))
    X, y = cases.data()
    net = cases.model()  # the MPI run's checkpoint (after 4 epochs), resumed here on one process
    xpnet.fit(net, X, y, epochs=8, batch_size=cases.BATCH, l2=1e-3, validation_split=0.15,
              resume=str(tmp_path / "ck.npz"))
    assert np.allclose(net.params, ranks[0]["checkpoint"]["params"], rtol=TOL, atol=TOL)

    _compare(ranks, "estimator", cases.case_estimator(None, None), ("loss", "params"))
    errors = [_meta(r["setup"])["error"] for r in ranks]
    assert errors[1].startswith("ValueError: epochs") and errors[0].startswith("DistributedError: xpnet's set-up "
                                                                                 "failed on rank 1 of 2")


def test_three_ranks_with_an_empty_share(tmp_path, main_reference: dict) -> None:
    """16 rows = 6 + 5 + 5; the last batch of 2 rows leaves rank 2 nothing: it still takes part."""
    ranks = run_cases(3, "main,estimator", tmp_path)
    _compare(ranks, "main", main_reference, HISTORY)
    _compare(ranks, "estimator", cases.case_estimator(None, None), ("loss", "params"))


def test_one_rank_is_bit_identical_to_fit(tmp_path, main_reference: dict) -> None:
    ranks = run_cases(1, "main", tmp_path)
    _compare(ranks, "main", main_reference, HISTORY, exact=True)


def test_a_signal_on_one_rank_stops_every_rank_after_the_same_step(tmp_path) -> None:
    ranks = run_cases(2, "signal", tmp_path)
    meta = [_meta(r["signal"]) for r in ranks]
    assert meta[0]["stopped"] == meta[1]["stopped"] == {
        "epoch": 2, "step_in_epoch": 1, "path": str(tmp_path / "sig-2-interrupted.npz"), "signum": 15}
    assert meta[1]["writes"] == [] and meta[0]["writes"][-1] == str(tmp_path / "sig-2-interrupted.npz")
    assert np.array_equal(ranks[0]["signal"]["params"], ranks[1]["signal"]["params"])
    assert sorted(p.name for p in tmp_path.glob("sig-*")) == ["sig-1.npz", "sig-2-interrupted.npz", "sig-2.npz"]


@pytest.mark.parametrize("how, expected", [
    ("raise", "xpnet: rank 1 of 2: RuntimeError: boom on purpose; aborting all ranks"),
    ("hang", "xpnet: rank 0 of 2: waited more than 3 s in allgather"),
])
def test_a_failing_rank_takes_the_job_down(tmp_path, how: str, expected: str) -> None:
    """An exception on rank 1 aborts the job at once; rank 1 stuck for a minute: rank 0's watchdog aborts it."""
    proc = mpirun(2, [WORKER, how, str(tmp_path)], timeout=60, XPNET_COMM_TIMEOUT="3")
    assert proc.returncode != 0 and expected in proc.stderr, proc.stderr
    assert "rank 0 trained epoch 2" in proc.stdout  # it failed where it should, not at start-up


def test_train_py_distributed(tmp_path) -> None:
    """mpiexec -n 2 scripts/train.py --distributed: rank 0 writes the run folder; the history is one process's."""
    flags = ["--epochs", "4", "--dtype", "float64", "--samples", "300", "--quiet", "--batch-size", "20"]
    proc = mpirun(2, [TRAIN, "--distributed", *flags, "--out", str(tmp_path / "mpi")], timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "parallel  MPI (" in proc.stdout and "2 ranks" in proc.stdout and proc.stdout.count("xpnet train:") == 1
    single = subprocess.run([sys.executable, TRAIN, *flags, "--out", str(tmp_path / "one")], capture_output=True,
                            text=True, timeout=180, env=_env(), cwd=ROOT)
    assert single.returncode == 0, single.stderr
    a, b = (json.loads((tmp_path / d / "history.json").read_text()) for d in ("mpi", "one"))
    for key in ("train_loss", "val_loss"):
        assert np.allclose(a["per_epoch"][key], b["per_epoch"][key], rtol=TOL, atol=TOL), key
    assert json.loads((tmp_path / "mpi" / "config.json").read_text())["distributed"].startswith("MPI (")


def test_train_py_distributed_refuses_a_lone_process(tmp_path) -> None:
    base = [sys.executable, TRAIN, "--distributed", "--epochs", "1", "--quiet", "--out", str(tmp_path / "x")]
    alone = subprocess.run(base, capture_output=True, text=True, timeout=120, env=_env(), cwd=ROOT)
    assert alone.returncode == 2 and "--distributed needs several processes" in alone.stderr, alone.stderr
    wrong = subprocess.run(base, capture_output=True, text=True, timeout=120, env=_env(OMPI_COMM_WORLD_SIZE="2"),
                           cwd=ROOT)
    assert wrong.returncode == 2 and "belongs to another MPI library" in wrong.stderr and MPIEXEC in wrong.stderr
    assert not (tmp_path / "x").exists()
