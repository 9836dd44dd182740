"""The checkpoint container: a zip of ``.npy`` members (format 1.0, C order, no pickles).

``numpy.load(path, allow_pickle=False)`` reads what :func:`write_npz` writes. :func:`read_npz`
parses the members itself (headers with ``ast.literal_eval``, data with ``struct``/``memoryview``),
checks every member's CRC and size, and never unpickles: a damaged or foreign file is reported
as a :class:`CheckpointError`, never half-loaded.
"""
from __future__ import annotations

import array
import ast
import math
import os
import struct
import sys
import zipfile
from typing import Any

import backends as _backends

__all__ = ["CheckpointError", "write_npz", "read_npz", "json_default"]

# .npy type letters -> struct format of the native element, per item size.
_STRUCT = {("f", 4): "f", ("f", 8): "d", ("i", 1): "b", ("i", 2): "h", ("i", 4): "i", ("i", 8): "q",
           ("u", 1): "B", ("u", 2): "H", ("u", 4): "I", ("u", 8): "Q", ("b", 1): "?"}
_NATIVE = "<" if sys.byteorder == "little" else ">"


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


def _parse_npy(path: str, name: str, raw: bytes) -> Any:
    """A host (NumPy) array from the bytes of one .npy member; never unpickles."""
    def bad(why: str) -> CheckpointError:
        return CheckpointError(path, f"member {name!r} is corrupted ({why})")
    if raw[:6] != b"\x93NUMPY" or len(raw) < 10:
        raise bad("not a .npy array")
    major = raw[6]
    if major == 1:
        start, hlen = 10, struct.unpack("<H", raw[8:10])[0]
    elif major in (2, 3) and len(raw) >= 12:
        start, hlen = 12, struct.unpack("<I", raw[8:12])[0]
    else:
        raise bad(f".npy format version {major}")
    try:
        header = ast.literal_eval(raw[start:start + hlen].decode("latin1"))  # literals only: no code runs
        descr, fortran, shape = header["descr"], header["fortran_order"], tuple(int(s) for s in header["shape"])
    except Exception:  # noqa: BLE001 - any malformed header is the same problem
        raise bad("unreadable .npy header") from None
    if "O" in str(descr):  # object arrays (also inside records) are stored pickled
        raise CheckpointError(path, f"member {name!r} holds Python objects (dtype {descr!r}), which would need "
                                    f"unpickling; xpnet never unpickles: this is not a checkpoint it wrote")
    if not isinstance(descr, str):
        raise bad(f"unsupported record array {descr!r}")
    order, kind, size = descr[:1], descr[1:2], descr[2:]
    fmt = _STRUCT.get((kind, int(size) if size.isdigit() else 0))
    if fmt is None or order not in "<>|=" or fortran:
        raise bad(f"unsupported array type {descr!r}{' in Fortran order' if fortran else ''}")
    count = math.prod(shape)
    data = raw[start + hlen:]
    if len(data) != count * int(size):
        raise bad(f"{len(data)} data bytes for shape {shape} of {descr}")
    npb = _backends.get("numpy")
    if count == 0:
        dtype = "bool" if kind == "b" else {"f": "float", "i": "int", "u": "uint"}[kind] + str(8 * int(size))
        return npb.xp.zeros(shape, dtype=npb.dtype(dtype))
    view = memoryview(bytearray(data))  # a writable copy
    if order in "<>" and order != _NATIVE and int(size) > 1:
        swapped = array.array(fmt, bytes(view))
        swapped.byteswap()
        view = memoryview(bytearray(swapped.tobytes()))
    return npb.asarray(view.cast(fmt, shape))


def read_npz(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except FileNotFoundError:
        raise CheckpointError(path, "no such file") from None
    except OSError as exc:
        raise CheckpointError(path, f"cannot be read ({exc.strerror or exc})") from None
    if not head:
        raise CheckpointError(path, "is empty (0 bytes), not a checkpoint")
    if head not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise CheckpointError(path, "is not an xpnet checkpoint (not an .npz/zip file)")
    arrays = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    raise CheckpointError(path, f"is not an xpnet checkpoint (unexpected member {info.filename!r})")
                name = info.filename[:-4]
                arrays[name] = _parse_npy(path, name, zf.read(info))  # zipfile checks the CRC
    except zipfile.BadZipFile as exc:
        raise CheckpointError(path, f"is truncated or corrupted ({exc}): it was not written completely") from None
    except (EOFError, zipfile.LargeZipFile, OSError) as exc:
        raise CheckpointError(path, f"is truncated or corrupted ({type(exc).__name__}: {exc})") from None
    return arrays


def json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # NumPy scalars and arrays, 0-d device arrays
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON-serializable")
