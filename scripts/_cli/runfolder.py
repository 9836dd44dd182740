"""The run folder: its name, its files (every write atomic, through :mod:`xpnet.io.atomic`), the
environment recorded in config.json, saving without being interrupted, and reporting a write that failed."""
from __future__ import annotations

import contextlib
import importlib.metadata
import datetime
import os
import platform
import shutil
import signal
import sys
from typing import Any, Callable, Iterator, Sequence

import numpy as np

import xpnet
from xpnet.io.atomic import atomic_write, check_writable

from .args import WRITE_FAILED, CLIError


def default_out_dir(prefix: str) -> str:
    """``runs/<prefix>-<timestamp>`` (with a suffix when that exists already)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = os.path.join("runs", f"{prefix}-{stamp}")
    out, i = base, 2
    while os.path.exists(out):
        out, i = f"{base}-{i}", i + 1
    return out


def make_out_dir(path: str) -> str:
    """Create the output folder ``path`` (CLIError when it cannot be one)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise CLIError(f"--out {path} exists and is not a directory")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise CLIError(f"cannot create output directory {path}: {exc.strerror or exc}") from None
    try:  # every output goes here: find out now, not after training, that it cannot be written
        check_writable(os.path.join(path, "config.json"), "--out")
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    return path


def write_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
    """``arrays`` as an uncompressed .npz (loadable with ``allow_pickle=False``), written atomically."""
    atomic_write(path, lambda f: np.savez(f, **arrays))


def copy_file(src: str, dst: str) -> None:
    """Copy ``src`` to ``dst`` atomically (nothing to do when they are the same file)."""
    if os.path.exists(dst) and os.path.samefile(src, dst):
        return
    with open(src, "rb") as f:
        atomic_write(dst, lambda out: shutil.copyfileobj(f, out))


def write_failed(exc: OSError, out: str, saves: Sequence[Callable[[], list[str]]], when: str) -> int:
    """A write failed during training (``exc``): run each of ``saves`` (each returns the names it wrote), print
    one line saying what was and was not saved, and return :data:`~.args.WRITE_FAILED`."""
    failed = [os.path.basename(exc.filename) if exc.filename else "the checkpoint"]
    saved = [f for f in ("config.json", "split.npz") if os.path.exists(os.path.join(out, f))]
    with sigint_ignored():
        for save in saves:
            try:
                saved += save()
            except OSError as more:
                failed.append(os.path.basename(more.filename) if more.filename else "an output")
    print(f"error: could not save {failed[0]} ({exc.strerror or exc}) {when}: training stopped; saved "
          f"{', '.join(saved) or 'nothing'} in {out}; not saved: {', '.join(dict.fromkeys(failed))}", file=sys.stderr)
    return WRITE_FAILED


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """Ignore Ctrl-C and SIGTERM while saving (so a second signal cannot leave half-written outputs)."""
    old = {}
    try:
        for s in (signal.SIGINT, signal.SIGTERM):
            old[s] = signal.signal(s, signal.SIG_IGN)
    except ValueError:  # not the main thread
        pass
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def environment(backend: Any) -> dict:
    """Library versions and the device, for config.json."""
    versions = dict(backend.versions(), xpnet=xpnet.__version__)
    for dist in ("scikit-learn", "tqdm", "matplotlib"):  # read from the installed metadata: nothing imported
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[dist] = importlib.metadata.version(dist)
    return {"backend": backend.spec, "device": backend.device_name, "backend_description": backend.describe(),
            "versions": versions, "platform": platform.platform(), "command": [sys.executable] + sys.argv}
