"""The run folder: its name, its files (every write atomic, through :mod:`xpnet.io.atomic`), the
environment recorded in config.json, and saving without being interrupted."""
from __future__ import annotations

import contextlib
import datetime
import os
import platform
import shutil
import signal
import sys
from typing import Any, Iterator

import numpy as np

import xpnet
from xpnet.io.atomic import atomic_write

from .args import CLIError


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
    import sklearn

    versions = dict(backend.versions())
    versions.update({"xpnet": xpnet.__version__, "scikit-learn": sklearn.__version__})
    for mod in ("tqdm", "matplotlib"):
        with contextlib.suppress(ImportError):
            versions[mod] = __import__(mod).__version__
    return {"backend": backend.spec, "device": backend.device_name, "backend_description": backend.describe(),
            "versions": versions, "platform": platform.platform(), "command": [sys.executable] + sys.argv}
