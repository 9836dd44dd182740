"""``--distributed``: data-parallel training over MPI, ``mpiexec -n N python scripts/train.py --distributed ...``.

Every rank parses the same flags, loads the same data and builds the same model; ``xpnet.fit(comm=...)``
trains each rank on its share of every batch (see ``xpnet/train/distributed.py``). Rank 0 makes the
run folder, shows the progress bar, writes every output (the checkpoints too) and prints the summary;
the other ranks train alongside it and exit with the same status. On GPUs each rank takes the device
of its index among the ranks on its machine unless --device names one.
"""
from __future__ import annotations

import argparse
from typing import Any, Callable

import backends
from backends._comm import expected_mpiexec, gpu_count

import xpnet
from xpnet import checkpoint as ckpt

from .args import AUTO_LR, CLIError

HELP = ("data-parallel training over MPI: launch N processes with mpiexec -n N python scripts/train.py "
        "--distributed ...; each trains on its share of every batch and one allreduce per step sums the "
        "gradients, so the result is the single-process run's (within rounding). Rank 0 writes the outputs. "
        "Needs mpi4py and an MPI library (pip install \"xpnet[distributed]\")")


def add_distributed_args(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--distributed", action="store_true", help=HELP)


def start(args: argparse.Namespace) -> Any:
    """The communicator of a --distributed run (None without the flag); CLIError when this process is not one of
    several MPI ranks. On a GPU backend without --device: the device of the rank's index on its machine."""
    if not getattr(args, "distributed", False):
        return None
    if getattr(args, "lr_find", False) or getattr(args, "lr", None) == AUTO_LR:
        raise CLIError("--lr-find and --lr auto run the learning-rate finder, which is not distributed: run it on "
                       "one process first, then pass its --lr to the --distributed run")
    mpiexec = expected_mpiexec()
    try:
        comm = backends.communicator("mpi")
    except backends.BackendUnavailable as exc:
        raise CLIError(f"--distributed: {exc.reason}") from None
    except ValueError as exc:  # a singleton started by another MPI library's mpiexec
        raise CLIError(f"--distributed: {exc}") from None
    if comm.size < 2:
        raise CLIError(f"--distributed needs several processes, but this one is alone (an MPI communicator of size "
                       f"1): launch it with {mpiexec} -n N python scripts/train.py --distributed ... (N >= 2), "
                       f"or drop --distributed to train on one process")
    base, _, dev = str(args.backend).partition(":")
    local = comm.local_rank  # collective: every rank is here
    if base == "cupy" and not dev and args.device is None and gpu_count("cupy"):
        args.device = str(local % gpu_count("cupy"))
    elif base == "torch" and (args.device or dev) == "cuda" and gpu_count("torch"):
        args.backend, args.device = "torch", f"cuda:{local % gpu_count('torch')}"
    return comm


def is_root(comm: Any) -> bool:
    return comm is None or comm.rank == 0


def shared(comm: Any, make: Callable[[], Any]) -> Any:
    """``make()`` on rank 0 (e.g. the run folder); every rank gets its result, or rank 0's error."""
    if comm is None:
        return make()
    value = error = None
    if comm.rank == 0:
        try:
            value = make()
        except Exception as exc:  # noqa: BLE001 - shared with the other ranks, then raised
            error = exc
    value, message = comm.bcast((value, None if error is None else f"{type(error).__name__}: {error}"))
    if error is not None:
        raise error
    if message is not None:
        raise CLIError(f"rank 0 could not start the run: {message}")
    return value


def describe(comm: Any, backend: Any) -> str | None:
    """How the run is distributed (the communicator bound to ``backend``: which path reduces the buffers)."""
    return None if comm is None else comm.bind(backend).describe()


def follow(model: xpnet.Network, X: Any, y: Any, fit_args: dict, train: bool) -> int:
    """A rank other than 0: train alongside rank 0 (``fit_args``: rank 0's arguments, without its progress bar) and
    return the exit status rank 0 will return; rank 0 writes every output."""
    if not train:  # a resumed run that is already complete: nothing to train
        return 0
    try:
        xpnet.fit(model, X, y, **fit_args)
    except ckpt.Interrupted as exc:
        return 128 + int(exc.signum)
    except xpnet.TrainingStopped:
        return 1
    except OSError:  # rank 0 could not write a checkpoint (it reports it)
        return 3
    return 0
