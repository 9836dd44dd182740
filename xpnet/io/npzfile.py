"""The checkpoint container: a zip of ``.npy`` members (format 1.0, C order, no pickles).

``numpy.load(path, allow_pickle=False)`` reads what :func:`write_npz` writes. Reading goes through
:class:`Archive`, which parses the members itself (headers with ``ast.literal_eval``, data with
``memoryview``) and never unpickles: it opens only regular files (a FIFO or device would block or
never end), refuses encrypted members and compression other than deflate, reads a member's header
before its data so that a caller can check the declared shape and dtype first, reads no more data
than the header declares (a small deflated member cannot inflate past it) and checks every CRC.
A damaged or foreign file is a :class:`CheckpointError`, never half-loaded.
"""
from __future__ import annotations

import array
import ast
import math
import os
import stat
import struct
import sys
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any

import backends as _backends

from .. import _validate as check

__all__ = ["CheckpointError", "Archive", "Member", "write_npz", "read_npz", "json_default"]

# .npy type letters -> struct format of the native element, per item size.
_STRUCT = {("f", 4): "f", ("f", 8): "d", ("i", 1): "b", ("i", 2): "h", ("i", 4): "i", ("i", 8): "q",
           ("u", 1): "B", ("u", 2): "H", ("u", 4): "I", ("u", 8): "Q", ("b", 1): "?"}
_NATIVE = "<" if sys.byteorder == "little" else ">"
_MAX_HEADER = 1 << 16  # numpy writes headers of at most a few hundred bytes
_CHUNK = 1 << 20
# What a corrupted zip can raise while it is read (zipfile validates little of a central directory).
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, NotImplementedError, RuntimeError,
               ValueError, struct.error, OverflowError, zlib.error)


class CheckpointError(ValueError):
    """A checkpoint cannot be written, read or applied; ``str(err)`` is one line naming the file."""

    def __init__(self, path: Any, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = " ".join(str(problem).split())
        super().__init__(f"checkpoint {self.path!r}: {self.problem}" if self.path else f"checkpoint: {self.problem}")


def _npy_header(host: Any, name: str) -> bytes:
    dt = host.dtype
    if dt.kind not in "biuf":
        raise CheckpointError(None, f"array {name!r} has dtype {dt}: only bool, integer and float arrays are stored")
    header = "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (dt.str, tuple(int(s) for s in host.shape))
    header += " " * (-(10 + len(header) + 1) % 64) + "\n"  # data starts 64-byte aligned, as numpy writes it
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1")


def write_npz(f: Any, arrays: dict[str, Any]) -> None:
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, host in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as w:
                w.write(_npy_header(host, name))
                w.write(host.tobytes())


@dataclass(frozen=True)
class Member:
    """A member's .npy header: ``kind`` ("f", "i", "u", "b"), ``itemsize``, ``order`` ("<", ">", "|", "=")
    and ``shape``; ``nbytes`` is the data size the header declares."""

    name: str
    kind: str
    itemsize: int
    order: str
    shape: tuple[int, ...]
    header_size: int

    @property
    def dtype(self) -> str:
        """The dtype name (float32, int64, bool, ...)."""
        if self.kind == "b":
            return "bool"
        return {"f": "float", "i": "int", "u": "uint"}[self.kind] + str(8 * self.itemsize)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.itemsize


class Archive:
    """A checkpoint file opened for checked reading (see the module docstring); a context manager."""

    def __init__(self, path: str):
        self.path = path
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise CheckpointError(path, "no such file") from None
        except OSError as exc:
            raise CheckpointError(path, f"cannot be read ({exc.strerror or exc})") from None
        self._check_regular(st)
        try:  # O_NONBLOCK: a FIFO put in its place after the stat above cannot block the open
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except OSError as exc:
            raise CheckpointError(path, f"cannot be read ({exc.strerror or exc})") from None
        self._file = os.fdopen(fd, "rb")
        try:
            self._check_regular(os.fstat(fd))
            self._open_zip()
        except BaseException:
            self._file.close()
            raise

    def _check_regular(self, st: os.stat_result) -> None:
        if stat.S_ISDIR(st.st_mode):
            raise CheckpointError(self.path, "is a directory, not a checkpoint file")
        if not stat.S_ISREG(st.st_mode):
            raise CheckpointError(self.path, "is not a regular file (a FIFO, socket or device): checkpoints are "
                                             "read only from regular files")
        if st.st_size == 0:
            raise CheckpointError(self.path, "is empty (0 bytes), not a checkpoint")

    def _open_zip(self) -> None:
        if self._file.read(4) not in (b"PK\x03\x04", b"PK\x05\x06"):
            raise CheckpointError(self.path, "is not an xpnet checkpoint (not an .npz/zip file)")
        self._file.seek(0)
        try:
            self._zip = zipfile.ZipFile(self._file)
            infos = self._zip.infolist()
        except _ZIP_ERRORS as exc:
            raise self._corrupted(exc) from None
        self.members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            if not info.filename.endswith(".npy"):
                raise CheckpointError(self.path, f"is not an xpnet checkpoint (unexpected member {info.filename!r})")
            name = info.filename[:-4]
            if name in self.members:
                raise CheckpointError(self.path, f"is not an xpnet checkpoint (member {name!r} appears twice)")
            if info.flag_bits & 0x1:
                raise CheckpointError(self.path, f"member {name!r} is encrypted: not a file xpnet wrote")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise CheckpointError(self.path, f"member {name!r} uses zip compression method "
                                                 f"{info.compress_type}: xpnet reads stored or deflated members only")
            self.members[name] = info

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if getattr(self, "_zip", None) is not None:
            self._zip.close()
        self._file.close()

    def _corrupted(self, exc: BaseException) -> CheckpointError:
        if isinstance(exc, zipfile.BadZipFile):
            return CheckpointError(self.path, f"is truncated or corrupted ({exc}): it was not written completely")
        return CheckpointError(self.path, f"is truncated or corrupted ({type(exc).__name__}: {exc})")

    # ------------------------------------------------------------------ members
    def header(self, name: str) -> Member:
        """The .npy header of member ``name`` (its data is not read); checks the declared size against
        the zip entry's."""
        try:
            with self._zip.open(self.members[name]) as f:
                member = self._parse_header(name, f)
        except CheckpointError:
            raise
        except _ZIP_ERRORS as exc:
            raise self._corrupted(exc) from None
        if member.header_size + member.nbytes != self.members[name].file_size:
            raise self._bad(name, f"its header declares {member.nbytes} data bytes for shape {member.shape}, the zip "
                                  f"entry holds {self.members[name].file_size - member.header_size}")
        return member

    def _bad(self, name: str, why: str) -> CheckpointError:
        return CheckpointError(self.path, f"member {name!r} is corrupted ({why})")

    def _parse_header(self, name: str, f: Any) -> Member:
        head = f.read(12)
        if head[:6] != b"\x93NUMPY" or len(head) < 10:
            raise self._bad(name, "not a .npy array")
        major = head[6]
        if major == 1:
            start, hlen = 10, struct.unpack("<H", head[8:10])[0]
        elif major in (2, 3) and len(head) == 12:
            start, hlen = 12, struct.unpack("<I", head[8:12])[0]
        else:
            raise self._bad(name, f".npy format version {major}")
        if hlen > _MAX_HEADER:
            raise self._bad(name, f"a .npy header of {hlen} bytes")
        text = (head[start:] + f.read(hlen - (len(head) - start)))[:hlen]
        try:
            header = ast.literal_eval(text.decode("latin1"))  # literals only: no code runs
            descr, fortran, raw_shape = header["descr"], header["fortran_order"], header["shape"]
            shape = tuple(operator_index(s) for s in raw_shape)
        except Exception:  # noqa: BLE001 - any malformed header is the same problem
            raise self._bad(name, "unreadable .npy header") from None
        if "O" in str(descr):  # object arrays (also inside records) are stored pickled
            raise CheckpointError(self.path, f"member {name!r} holds Python objects (dtype {descr!r}), which "
                                             f"would need unpickling; xpnet never unpickles: this is not a "
                                             f"checkpoint it wrote")
        if not isinstance(descr, str):
            raise self._bad(name, f"unsupported record array {descr!r:.60}")
        order, kind, size = descr[:1], descr[1:2], descr[2:]
        itemsize = int(size) if size.isdigit() and len(size) < 3 else 0
        if (kind, itemsize) not in _STRUCT or order not in "<>|=" or fortran is not False or len(shape) > 32 \
                or any(s < 0 for s in shape):
            raise self._bad(name, f"unsupported array {descr!r:.40}{' in Fortran order' if fortran else ''} of "
                                  f"shape {str(shape)[:60]}")
        return Member(name, kind, itemsize, order, shape, start + hlen)

    def read(self, member: Member) -> Any:
        """The data of a member whose :meth:`header` was checked, as a host (NumPy) array."""
        npb = _backends.get("numpy")
        if member.nbytes == 0:
            return npb.xp.zeros(member.shape, dtype=npb.dtype(member.dtype))
        buf = bytearray(member.nbytes)
        view = memoryview(buf)
        try:
            with self._zip.open(self.members[member.name]) as f:
                f.read(member.header_size)
                done = 0
                while done < member.nbytes:
                    chunk = f.read(min(_CHUNK, member.nbytes - done))
                    if not chunk:
                        raise self._bad(member.name, f"{done} data bytes for shape {member.shape}")
                    view[done:done + len(chunk)] = chunk
                    done += len(chunk)
                if f.read(1):  # also makes zipfile check the CRC of the whole member
                    raise self._bad(member.name, f"more data than shape {member.shape} holds")
        except CheckpointError:
            raise
        except _ZIP_ERRORS as exc:
            raise self._corrupted(exc) from None
        fmt = _STRUCT[(member.kind, member.itemsize)]
        if member.order in "<>" and member.order != _NATIVE and member.itemsize > 1:
            swapped = array.array(fmt, buf)
            swapped.byteswap()
            view = memoryview(bytearray(swapped.tobytes()))
        return npb.asarray(view.cast(fmt, member.shape))


def operator_index(value: Any) -> int:
    """An int from a header's shape entry (bools and floats are refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"shape entry {value!r}")
    return value


def read_npz(path: str, max_bytes: int | None = None) -> dict[str, Any]:
    """Every member of an .npz file as host arrays, reading all headers first: the data they declare
    together must stay below ``max_bytes`` (default: :func:`xpnet._validate.memory_limit`)."""
    path = os.fspath(path)
    with Archive(path) as archive:
        members = [archive.header(name) for name in archive.members]
        total = sum(m.nbytes for m in members)
        limit = check.memory_limit()[0] if max_bytes is None else max_bytes
        if total > limit:
            raise CheckpointError(path, f"its arrays declare {check.byte_count(total)}, more than the "
                                        f"{check.byte_count(limit)} allowed for this file")
        return {m.name: archive.read(m) for m in members}


def json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # NumPy scalars and arrays, 0-d device arrays
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON-serializable")
