"""Atomic file writes: a crash at any moment leaves the old file or the complete new one.

The data goes to a temporary file in the target's directory (``.<name>.xpnet-<pid>-<random>.tmp``),
which is flushed and fsynced, then renamed over the target with ``os.replace`` and the
directory fsynced. A hard kill can leave the temporary file behind; the next write in the same
directory removes such leftovers of processes that no longer run (before writing, so that they
cannot fill the disk it needs). :func:`check_writable` tries a location before a long job relies on it.
"""
from __future__ import annotations

import functools
import glob
import json
import math
import os
import tempfile
from typing import Any, Callable

__all__ = ["atomic_write", "check_writable", "write_bytes", "write_text", "write_json", "json_safe",
           "remove_stale_temporaries"]

_TAG = ".xpnet-"


@functools.cache
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(directory: str) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but is not ours
        return True
    return True


def remove_stale_temporaries(directory: str) -> list[str]:
    """Delete temporary files of xpnet writers in ``directory`` whose process has ended; returns them."""
    removed = []
    for path in glob.glob(os.path.join(glob.escape(directory), f".*{_TAG}*.tmp")):
        try:
            pid = int(os.path.basename(path).rsplit(_TAG, 1)[1].split("-", 1)[0])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not _alive(pid):
            try:
                os.unlink(path)
                removed.append(path)
            except OSError:
                pass
    return removed


def atomic_write(path: str, write: Callable[[Any], None]) -> None:
    """Call ``write(binary_file)`` on a temporary file beside ``path``, then atomically replace ``path``."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    remove_stale_temporaries(directory)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}{_TAG}{os.getpid()}-", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename is None:
            exc.filename = path  # a failed write() names no file: name the one that was not written
        raise
    _fsync_dir(directory)


def check_writable(path: str, what: str = "output") -> None:
    """Raise ValueError (one line) now if ``path`` could not be written later: it is a directory, a folder
    on its way is a file, or its folder cannot be created or written (tried with a temporary file)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{what} path {path!r} is a directory: give a file name")
    directory = parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent) and os.path.dirname(parent) != parent:
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ValueError(f"{what} path {path!r} cannot be written: {parent!r} is a file, not a folder")
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}{_TAG}{os.getpid()}-", suffix=".tmp",
                                   dir=directory)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise ValueError(f"{what} path {path!r} cannot be written: {exc.strerror or exc} (in {directory})") from None


def write_bytes(path: str, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def json_safe(obj: Any) -> Any:
    """Strict-JSON form: non-finite floats become null; arrays and NumPy scalars become Python values."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (bool, int, float, str)):
        return json_safe(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str, obj: Any) -> None:
    """``obj`` as indented strict JSON (see :func:`json_safe`), written atomically."""
    write_bytes(path, json.dumps(json_safe(obj), indent=2, allow_nan=False).encode("utf-8") + b"\n")
